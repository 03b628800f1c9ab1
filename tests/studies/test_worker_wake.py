"""An idle worker wakes for new work between two claim rounds (``queue.work_marker``)."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from studies import queue, store
from studies.db import Database, TrialState
from studies.spec import parse_spec
from tests.studies.conftest import tiny_spec, worker_options, worker_thread

# Far longer than the test may take: the study can only start early through the wake-up.
POLL_INTERVAL_S = 3600.0
# How long the test waits for the slot (a trial of a second, on a loaded machine).
DEADLINE_S = 300.0


def test_the_work_marker_changes_when_a_slot_is_added_claimed_or_finished(
    db: Database, tmp_path: Path
) -> None:
    empty = queue.work_marker(db)
    study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    added = queue.work_marker(db)
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None and claim.study_id == study.id
    claimed = queue.work_marker(db)
    assert queue.finish(db, claim, state=TrialState.COMPLETE)
    finished = queue.work_marker(db)
    assert len({empty, added, claimed, finished}) == 4
    assert queue.work_marker(db) == finished  # nothing changed, nothing to wake for


def test_an_idle_worker_starts_a_submitted_study_before_its_poll_interval_ends(
    db: Database, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    options = worker_options(
        db.url, tmp_path, "idle", poll_interval_s=POLL_INTERVAL_S, exit_when_idle=False
    )
    with worker_thread(options) as thread:
        while not store.readiness(db).workers_seen:  # alive, so claiming right after
            thread.join(0.05)
            assert thread.is_alive()
        thread.join(0.5)  # its empty claim made: it is waiting for work now
        study = store.submit_study(
            db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
        )
        slot = store.list_trials(db, study.id).data[0].id
        deadline = time.monotonic() + DEADLINE_S
        while store.get_trial(db, slot).state is not TrialState.COMPLETE:
            assert time.monotonic() < deadline, "the idle worker never woke for the study"
            thread.join(0.05)
            assert thread.is_alive()
