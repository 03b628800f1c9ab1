"""Trials that never get stuck (issue 14, items 10 and 11), on a real database, no training:
each slot is reaped by its own worker's grace; a slot put back after its study was cancelled
ends; the reconciler closes the Optuna trials whose write after the queue's commit was
lost, so Optuna's states end equal to the queue's, and sweeps the files a killed worker left."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
from optuna.trial import TrialState as OptunaState
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

from studies import checkpoints, optuna_bridge, queue, resume, store
from studies.db import Database, TrialRow, TrialState, utcnow
from studies.reconcile import reconcile
from studies.results import TrialSummary
from studies.spec import parse_spec
from tests.studies.conftest import optuna_trials, start_claimed_trial, tiny_spec


def _submit(db: Database, tmp_path: Path, grid: list[float]) -> int:
    spec = parse_spec(tiny_spec(search={"grid": grid}, max_parallel=len(grid)))
    return store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts").id


def _claim_and_start(db: Database, *, worker: str, stale_after_s: float = 30.0) -> queue.Claim:
    """What a worker does first: claim the next slot and start its Optuna trial."""
    claim = queue.claim_next(db, worker=worker, device="cpu", stale_after_s=stale_after_s)
    assert claim is not None
    start_claimed_trial(db, claim)
    return claim


def _silent_for(db: Database, claim: queue.Claim, seconds: float) -> None:
    """The slot's worker last beat *seconds* ago (a worker stuck in a long epoch, or dead)."""
    with db.session() as session:
        session.execute(
            update(TrialRow)
            .where(TrialRow.id == claim.trial_id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=seconds))
        )


def _later(seconds: float = 3600.0) -> datetime:
    return utcnow() + timedelta(seconds=seconds)


def _database_gone(url: str, trial_id: int | None) -> None:
    """An Optuna write that never lands: the database went away for a moment."""
    raise OperationalError("UPDATE trials", {}, Exception("server closed the connection"))


def _optuna_states(db: Database, study_id: int) -> list[OptunaState]:
    name = store.get_study(db, study_id).optuna_study_name
    return [t.state for t in sorted(optuna_trials(db.url, name), key=lambda t: t.number)]


def test_a_slot_is_reaped_by_its_own_workers_grace_not_the_reapers(
    db: Database, tmp_path: Path
) -> None:
    _submit(db, tmp_path, [0.1, 0.01])
    patient = _claim_and_start(db, worker="patient", stale_after_s=120.0)
    hasty = _claim_and_start(db, worker="hasty", stale_after_s=5.0)
    # Both silent for a minute: past the default grace (30 s) the API's reaper runs with,
    # within the patient worker's own two minutes.
    _silent_for(db, patient, 60.0)
    _silent_for(db, hasty, 60.0)

    reaped = store.reap_stale_trials(db)

    assert [r.worker for r in reaped] == ["hasty"]
    assert queue.beat(db, patient)  # still its slot
    assert not queue.beat(db, hasty)
    detail = store.get_trial(db, hasty.trial_id)
    assert "grace of 5 s" in (detail.attempts[0].error or "")
    # Past the patient worker's own grace, it is reaped too.
    assert [r.worker for r in queue.reap_stale(db, now=_later(121.0))] == ["patient"]


def test_a_slot_reaped_after_its_study_was_cancelled_ends_instead_of_waiting(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, [0.1])
    claim = _claim_and_start(db, worker="dead")
    store.cancel_study(db, study_id)  # the running slot is flagged, its worker never reads it

    (reaped,) = queue.reap_stale(db, now=_later())

    assert not reaped.requeued
    trial = store.get_trial(db, claim.trial_id)
    assert trial.state is TrialState.PRUNED and trial.stop_reason == "cancelled before it started"
    assert store.get_study(db, study_id).progress == 1.0
    assert not queue.has_open_slots(db)  # --exit-when-idle workers exit
    assert _optuna_states(db, study_id) == [OptunaState.FAIL]


def test_a_slot_handed_back_after_its_study_was_cancelled_ends_instead_of_waiting(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, [0.1])
    claim = _claim_and_start(db, worker="stopping")
    store.cancel_study(db, study_id)

    assert queue.release(db, claim, reason="worker stopped before the trial finished")

    assert store.get_trial(db, claim.trial_id).state is TrialState.PRUNED
    assert not queue.has_open_slots(db)


def test_the_reconciler_fails_the_optuna_trial_whose_write_after_the_reap_was_lost(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_id = _submit(db, tmp_path, [0.1])
    _claim_and_start(db, worker="dead")

    # The reaper's commit lands; the Optuna write after it does not.
    with monkeypatch.context() as patch:
        patch.setattr(optuna_bridge, "fail_trial", _database_gone)
        with pytest.raises(OperationalError):
            queue.reap_stale(db, now=_later())
    assert _optuna_states(db, study_id) == [OptunaState.RUNNING]  # stuck, until:

    assert reconcile(db) == []  # too early: it might be a worker's start in flight
    (closed,) = reconcile(db, now=_later())
    assert closed.state == OptunaState.FAIL
    assert _optuna_states(db, study_id) == [OptunaState.FAIL]
    assert reconcile(db, now=_later()) == []  # nothing left to do


def test_an_orphaned_trial_waits_twice_its_studys_grace_not_the_defaults(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers with a 5 s grace (the chaos tests run with 8 s): the orphan of a lost reaper
    # write is failed once twice THAT grace has passed since the trial started, not after
    # twice the 30 s default — CI's chaos round waited 45 s past the study's end and still
    # found it RUNNING.
    study_id = _submit(db, tmp_path, [0.1])
    _claim_and_start(db, worker="hasty", stale_after_s=5.0)
    with monkeypatch.context() as patch:
        patch.setattr(optuna_bridge, "fail_trial", _database_gone)
        with pytest.raises(OperationalError):
            queue.reap_stale(db, now=_later())
    assert reconcile(db, now=_later(8.0)) == []  # within 2 × 5 s: a start may be in flight
    (closed,) = reconcile(db, now=_later(12.0))
    assert closed.state == OptunaState.FAIL
    assert _optuna_states(db, study_id) == [OptunaState.FAIL]


def test_the_reconciler_tells_optuna_the_result_a_worker_stored_but_never_told(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, [0.1, 0.01, 0.001])
    complete, pruned, failed = (_claim_and_start(db, worker=f"w{i}") for i in range(3))
    # Each worker stored its outcome in the queue, then died before telling Optuna.
    assert queue.finish(
        db, complete, state=TrialState.COMPLETE, summary=TrialSummary(objective_value=0.75)
    )
    assert queue.finish(db, pruned, state=TrialState.PRUNED, stop_reason="diverged")
    assert queue.finish(db, failed, state=TrialState.FAILED, error="boom")
    assert reconcile(db) == []  # within the workers' grace their own tells may be in flight

    closed = reconcile(db, now=_later())

    assert sorted(c.state for c in closed) == sorted(
        [OptunaState.COMPLETE, OptunaState.PRUNED, OptunaState.FAIL]
    )
    name = store.get_study(db, study_id).optuna_study_name
    by_number = {t.number: t for t in optuna_trials(db.url, name)}
    for claim, state in (
        (complete, OptunaState.COMPLETE),
        (pruned, OptunaState.PRUNED),
        (failed, OptunaState.FAIL),
    ):
        number = store.get_trial(db, claim.trial_id).optuna_trial_number
        assert number is not None and by_number[number].state == state
    complete_number = store.get_trial(db, complete.trial_id).optuna_trial_number
    assert complete_number is not None and by_number[complete_number].value == 0.75


def test_the_reconciler_ends_what_a_lost_cancellation_left_waiting(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study_id = _submit(db, tmp_path, [0.1, 0.01])

    def database_gone(url: str, trial_id: int) -> None:
        raise OperationalError("UPDATE trials", {}, Exception("server closed the connection"))

    with monkeypatch.context() as patch:
        patch.setattr(optuna_bridge, "end_waiting_trial", database_gone)
        with pytest.raises(OperationalError):
            store.cancel_study(db, study_id)
    assert _optuna_states(db, study_id) == [OptunaState.WAITING] * 2

    reconcile(db, now=_later())

    assert _optuna_states(db, study_id) == [OptunaState.PRUNED] * 2


def test_a_killed_workers_slot_files_are_swept_once_its_slot_is_over(
    db: Database, tmp_path: Path
) -> None:
    """A worker killed mid-trial leaves the slot's epoch state and running checkpoint; they
    are the next attempt's while the slot waits, and swept (by each worker after a trial,
    and by the reconciler each period) once its last retry was reaped."""
    artifacts = tmp_path / "artifacts"
    study_id = _submit(db, tmp_path, [0.1])
    files: list[Path] = []
    while (claim := queue.claim_next(db, worker="doomed", device="cpu")) is not None:
        start_claimed_trial(db, claim)
        # What the trainer wrote before the kill: the epoch state and the best epoch so far.
        files = [
            resume.epoch_state_path(artifacts, claim.trial_id),
            checkpoints.running_path(artifacts, claim.trial_id),
        ]
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"written before the kill")
        (reaped,) = queue.reap_stale(db, now=_later())
        if reaped.requeued:
            reconcile(db, artifacts_dir=artifacts)
            assert all(path.exists() for path in files)  # the next attempt resumes from them
    assert store.get_trial(db, claim_trial_id(db, study_id)).state is TrialState.FAILED

    reconcile(db, artifacts_dir=artifacts)

    assert [path for path in files if path.exists()] == []


def claim_trial_id(db: Database, study_id: int) -> int:
    return store.list_trials(db, study_id).data[0].id
