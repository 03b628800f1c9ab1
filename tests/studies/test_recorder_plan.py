"""The worker's diagnosis knows the run's plan (issue 11, v2): the study's epochs and LR
schedule travel with the curves, so a trial stopped before its planned end, or before a
scheduled step, is judged as unfinished. Real queue, real SQLite file."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from studies import queue, store
from studies.db import Database
from studies.diagnosis import Label
from studies.recorder import EpochRecorder
from studies.spec import parse_spec
from tests.studies.conftest import record_completed_run, tiny_spec
from trainer import EpochRecord


def _records(epochs: int) -> list[EpochRecord]:
    """Validation flat at ~0.92 at a constant LR while the training loss still falls."""
    return [
        EpochRecord(
            epoch=e + 1,
            train_loss=0.3 * math.exp(-e / 12) + 0.02,
            train_acc=0.94 - 0.3 * math.exp(-e / 3),
            val_loss=0.25 + 0.1 * math.exp(-e / 2) + 0.003 * (-1) ** e,
            val_acc=0.92 - 0.3 * math.exp(-e / 2) + 0.002 * (-1) ** e,
            lr=0.1,
            seconds=1.0,
            images_per_s=100.0,
            grad_norm=1.0,
            grad_norm_first=0.1,
            grad_norm_last=0.2,
            dead_relu_fraction=0.0,
            nonfinite=False,
        )
        for e in range(epochs)
    ]


def _recorded(db: Database, tmp_path: Path, train: dict[str, Any], epochs: int) -> EpochRecorder:
    store.submit_study(db, parse_spec(tiny_spec(train=train)), artifacts_dir=tmp_path)
    claim = queue.claim_next(db, worker="mine", device="cpu")
    assert claim is not None
    return record_completed_run(db, claim, _records(epochs), data_dir=tmp_path)


def test_a_trial_stopped_before_its_planned_end_is_judged_with_its_plan(
    db: Database, tmp_path: Path
) -> None:
    """The plan travels from the study to the diagnoser: the forecast looks to the planned
    end and the evidence says how far the run got (the label is the rules' business, tested
    in tests/diagnosis)."""
    train = {"epochs": 60, "schedule": "step", "step_size": 30}
    diagnosis = _recorded(db, tmp_path, train, epochs=20).diagnose()
    assert diagnosis is not None
    assert diagnosis.forecast is not None and diagnosis.forecast.horizon_epochs == 60
    assert diagnosis.evidence.planned_epochs == 60
    assert diagnosis.evidence.stage == "in_progress"


def test_a_plan_shorter_than_the_recorded_run_is_left_out_not_an_error(
    db: Database, tmp_path: Path
) -> None:
    diagnosis = _recorded(db, tmp_path, {"epochs": 5}, epochs=8).diagnose()
    assert diagnosis is not None and diagnosis.evidence.planned_epochs is None
    assert diagnosis.evidence.stage == "unknown"


def test_a_trial_that_ran_its_whole_plan_is_judged_as_finished(
    db: Database, tmp_path: Path
) -> None:
    train = {"epochs": 20, "schedule": "none"}
    diagnosis = _recorded(db, tmp_path, train, epochs=20).diagnose()
    assert diagnosis is not None
    assert diagnosis.label is Label.HEALTHY
    assert diagnosis.forecast is not None and diagnosis.forecast.horizon_epochs == 40
