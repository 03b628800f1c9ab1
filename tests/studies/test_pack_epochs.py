"""A pack's epoch end is one transaction (issue 15): every member's epoch row, running
summary and heartbeat are stored together (``queue.record_epochs``), each still fenced by
its own slot, and the study's cancel flag and COMPLETE count are read with them."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from studies import queue, store
from studies.db import Database, TrialState, utcnow
from studies.spec import parse_spec
from studies.worker import run_worker
from tests.studies.conftest import start_claimed_trial, tiny_spec, worker_options

GRID = [0.1, 0.05, 0.02]
EPOCHS = 3


class _EpochTransactions:
    """Every committed transaction of this process that stored epoch rows, as the number of
    slots whose epoch it stored (one conditional ``UPDATE … epochs_done`` per slot): read
    from SQLAlchemy's own events on the real engines, so it sees what reached the database."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self._open: dict[int, Counter[str]] = defaultdict(Counter)
        self._lock = threading.Lock()  # the worker's heartbeat thread writes too

    def statement(self, conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        text = " ".join(sql.split()).lower()
        with self._lock:
            if text.startswith("insert into sweepdoc_epochs"):
                self._open[id(conn)]["rows"] += 1
            elif text.startswith("update sweepdoc_trials set") and "epochs_done" in text:
                self._open[id(conn)]["slots"] += 1

    def commit(self, conn: Any) -> None:
        with self._lock:
            seen = self._open.pop(id(conn), Counter())
        if seen["rows"]:
            self.sizes.append(seen["slots"])

    def rollback(self, conn: Any) -> None:
        with self._lock:
            self._open.pop(id(conn), None)


@pytest.fixture
def epoch_transactions() -> Iterator[_EpochTransactions]:
    probe = _EpochTransactions()
    hooks: list[tuple[str, Callable[..., Any]]] = [
        ("before_cursor_execute", probe.statement),
        ("commit", probe.commit),
        ("rollback", probe.rollback),
    ]
    for name, hook in hooks:
        event.listen(Engine, name, hook)
    try:
        yield probe
    finally:
        for name, hook in hooks:
            event.remove(Engine, name, hook)


def _run(db: Database, tmp_path: Path, max_pack: int) -> list[Any]:
    spec = parse_spec(
        tiny_spec(
            search={"grid": GRID},
            train={"epochs": EPOCHS},
            max_pack=max_pack,
            max_parallel=len(GRID),
        )
    )
    options = worker_options(db.url, tmp_path, "packer", torch_threads=1)
    study = store.submit_study(db, spec, artifacts_dir=options.artifacts_dir)
    run_worker(options)
    return [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]


def test_a_packs_members_store_each_epoch_in_one_transaction(
    db: Database, tmp_path: Path, epoch_transactions: _EpochTransactions
) -> None:
    trials = _run(db, tmp_path, max_pack=len(GRID))

    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(GRID)
    assert all(len(t.packed_with or []) == len(GRID) - 1 for t in trials)
    # One transaction per pack-epoch, each storing every member's epoch.
    assert epoch_transactions.sizes == [len(GRID)] * EPOCHS
    for trial in trials:  # every epoch stored once, under the member's own slot
        assert [int(r["epoch"]) for r in trial.epochs] == list(range(1, EPOCHS + 1))
        assert trial.epochs_done == EPOCHS


def test_trials_alone_store_one_epoch_per_transaction(
    db: Database, tmp_path: Path, epoch_transactions: _EpochTransactions
) -> None:
    trials = _run(db, tmp_path, max_pack=1)

    assert [t.state for t in trials] == [TrialState.COMPLETE] * len(GRID)
    assert epoch_transactions.sizes == [1] * (EPOCHS * len(GRID))


def test_a_slot_taken_away_is_acked_not_owned_and_the_others_epochs_land(
    db: Database, tmp_path: Path
) -> None:
    spec = parse_spec(tiny_spec(search={"grid": GRID}, max_parallel=len(GRID)))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    claims = []
    # The middle slot's worker has a short grace: the reaper below takes it alone away.
    for grace_s in (3600.0, 1.0, 3600.0):
        claim = queue.claim_next(db, worker="packer", device="cpu", stale_after_s=grace_s)
        assert claim is not None
        start_claimed_trial(db, claim)
        claims.append(claim)
    finished, lost, kept = claims
    assert queue.finish(db, finished, state=TrialState.COMPLETE)
    reaped = queue.reap_stale(db, now=utcnow() + timedelta(seconds=60))
    assert [r.trial_id for r in reaped] == [lost.trial_id]

    acks = queue.record_epochs(
        db,
        [
            queue.EpochWrite(lost, {"epoch": 1, "val_acc": 0.5}),
            queue.EpochWrite(kept, {"epoch": 1, "val_acc": 0.6}),
        ],
    )

    assert [ack.owned for ack in acks] == [False, True]
    assert acks[1].complete_in_study == 1 and not acks[1].cancel_requested
    assert store.get_trial(db, lost.trial_id).epochs == []
    assert [r["val_acc"] for r in store.get_trial(db, kept.trial_id).epochs] == [0.6]
    store.cancel_study(db, study.id)
    (ack,) = queue.record_epochs(db, [queue.EpochWrite(kept, {"epoch": 2, "val_acc": 0.7})])
    assert ack.owned and ack.cancel_requested
