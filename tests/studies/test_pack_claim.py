"""Claiming a pack (issue 15): up to K waiting slots of one study at once, each still won by
exactly one worker, ``max_parallel`` counting every member, heartbeats and reaping per slot."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from studies import queue, store
from studies.db import Database, TrialRow, TrialState, WorkerRow, utcnow
from studies.spec import parse_spec
from tests.studies.conftest import tiny_spec

GRID = [0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001, 5e-05, 2e-05]


def _submit(db: Database, tmp_path: Path, **overrides: Any) -> int:
    spec = parse_spec(tiny_spec(search={"grid": GRID}, **overrides))
    return store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts").id


def _claim_pack(db: Database, worker: str, size: int) -> list[queue.Claim]:
    first = queue.claim_next(db, worker=worker, device="cpu")
    if first is None:
        return []
    return [first, *queue.claim_more(db, first, size - 1, device="cpu", stale_after_s=30.0)]


def _claim_until_empty(url: str, worker: str, size: int, start: Any, out: Any) -> None:
    """A worker process: claim packs of *size* (never finishing them) until none is left."""
    db = Database(url)
    start.wait()
    won: list[int] = []
    while claims := _claim_pack(db, worker, size):
        won.extend(c.trial_id for c in claims)
    out.put((worker, won))
    db.dispose()


def test_two_racing_worker_processes_claim_every_slot_exactly_once(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, max_parallel=len(GRID))
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_until_empty, args=(db.url, f"w{i}", 4, start, out))
        for i in range(2)
    ]
    for proc in procs:
        proc.start()
    start.set()
    results = dict(out.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0

    every = [trial_id for won in results.values() for trial_id in won]
    assert len(every) == len(set(every)) == len(GRID)  # each slot won once, none left over
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.id, TrialRow.worker, TrialRow.state, TrialRow.attempt).where(
                TrialRow.study_id == study_id
            )
        ).all()
    owner = {trial_id: worker for worker, won in results.items() for trial_id in won}
    for trial_id, worker, state, attempt in rows:
        assert (state, attempt, worker) == (TrialState.RUNNING, 1, owner[trial_id])


def test_a_pack_counts_every_member_against_max_parallel(db: Database, tmp_path: Path) -> None:
    study_id = _submit(db, tmp_path, max_parallel=5)

    first = _claim_pack(db, "a", 4)
    second = _claim_pack(db, "b", 4)  # one slot left under max_parallel
    third = _claim_pack(db, "c", 4)

    assert [len(first), len(second), len(third)] == [4, 1, 0]
    assert {c.study_id for c in first + second} == {study_id}
    assert [c.number for c in first] == sorted(c.number for c in first)  # slot order


def test_a_cancelled_study_gives_no_more_members(db: Database, tmp_path: Path) -> None:
    _submit(db, tmp_path, max_parallel=len(GRID))
    first = queue.claim_next(db, worker="a", device="cpu")
    assert first is not None
    queue.cancel(db, first.study_id)

    assert queue.claim_more(db, first, 3, device="cpu", stale_after_s=30.0) == []


def test_each_member_of_a_dead_pack_is_reaped_and_queued_again(
    db: Database, tmp_path: Path
) -> None:
    """Heartbeats and reaping are per slot: a pack whose worker died is re-queued member by
    member, and a member still beating (another worker's) is left alone."""
    study_id = _submit(db, tmp_path, max_parallel=len(GRID))
    dead = _claim_pack(db, "dead", 3)
    alive = _claim_pack(db, "alive", 1)
    # The dead worker stopped beating; the live one beats on: as of a minute from now,
    # only the dead pack's heartbeats are older than their grace.
    later = utcnow() + timedelta(minutes=1)
    with db.session() as session:
        session.execute(
            update(TrialRow).where(TrialRow.id == alive[0].trial_id).values(heartbeat_at=later)
        )

    reaped = queue.reap_stale(db, now=later)

    assert sorted(r.trial_id for r in reaped) == sorted(c.trial_id for c in dead)
    assert queue.beat(db, alive[0])
    assert not any(queue.beat(db, c) for c in dead)  # fenced: their writes no longer land
    with db.session() as session:
        states = dict(
            session.execute(
                select(TrialRow.id, TrialRow.state).where(TrialRow.study_id == study_id)
            ).all()
        )
    assert all(states[c.trial_id] is TrialState.WAITING for c in dead)


@pytest.mark.parametrize("count", [0, -1])
def test_claiming_no_more_members_claims_nothing(db: Database, tmp_path: Path, count: int) -> None:
    _submit(db, tmp_path)
    first = queue.claim_next(db, worker="a", device="cpu")
    assert first is not None
    assert queue.claim_more(db, first, count, device="cpu", stale_after_s=30.0) == []


def _current_trial(db: Database, worker: str) -> int | None:
    with db.session() as session:
        return session.scalar(select(WorkerRow.current_trial_id).where(WorkerRow.name == worker))


def test_a_packed_workers_row_names_a_slot_it_still_runs(db: Database, tmp_path: Path) -> None:
    """The worker row names one running slot; when a pack's member finishes, the row must not
    say idle while the other members train on (it did: finishing one cleared it)."""
    _submit(db, tmp_path, max_parallel=len(GRID))
    queue.touch_worker(db, name="w", host="h", pid=1, device="cpu", current_trial_id=None)
    first, second = _claim_pack(db, "w", 2)

    assert queue.beat(db, first) and queue.beat(db, second)
    assert _current_trial(db, "w") == second.trial_id
    assert queue.finish(db, first, state=TrialState.COMPLETE)
    assert _current_trial(db, "w") == second.trial_id  # another member's end leaves it

    assert queue.beat(db, second)
    assert queue.finish(db, second, state=TrialState.COMPLETE)
    assert _current_trial(db, "w") is None  # the slot it named ended: idle
