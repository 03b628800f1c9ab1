"""A run's summary numbers (pure: records in, TrialSummary out) and what the recorder and the
queue make of them on a real database: the summary stored with each epoch, the study's
best trial as the diagnoser's context, and whether anything is left to run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from studies import queue, store
from studies.db import Database, TrialState
from studies.recorder import EpochRecorder
from studies.results import RunFacts, TrialSummary, summarize
from studies.spec import Objective, parse_spec
from tests.studies.conftest import record_completed_run, tiny_spec
from trainer import EpochRecord

NAN, INF = math.nan, math.inf
FACTS = RunFacts(num_classes=10, train_size=240, val_size=60, input_shape=[1, 8, 8], device="cpu")


def _record(epoch: int, *, val_acc: float, val_loss: float, **other: float) -> dict[str, Any]:
    values: dict[str, Any] = {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "train_acc": 0.5,
        "val_loss": val_loss,
        "val_acc": val_acc,
        "lr": 0.1,
        "seconds": 1.0,
        "images_per_s": 100.0,
        "grad_norm": 1.0,
        "grad_norm_first": 0.1,
        "grad_norm_last": 0.2,
        "dead_relu_fraction": 0.0,
        "nonfinite": False,
    }
    values.update(other)
    return values


# -- summarize (pure) ------------------------------------------------------------------


def test_no_epoch_yet_gives_the_facts_alone() -> None:
    summary = summarize([], facts=FACTS, maximize=True)
    assert summary == TrialSummary(**FACTS.model_dump())
    assert summary.final_val_acc is None and summary.objective_value is None


def test_best_numbers_skip_non_finite_epochs_and_final_ones_keep_them() -> None:
    records = [
        _record(1, val_acc=0.4, val_loss=1.5),
        _record(2, val_acc=0.7, val_loss=0.9),
        _record(3, val_acc=NAN, val_loss=INF, train_loss=NAN),
    ]
    summary = summarize(records, facts=FACTS, maximize=True)
    assert (summary.best_val_acc, summary.best_epoch, summary.best_val_loss) == (0.7, 2, 0.9)
    assert math.isnan(summary.final_val_acc or 0.0) and summary.final_val_loss == INF
    assert summary.final_train_loss is not None and math.isnan(summary.final_train_loss)
    assert summary.final_train_acc == 0.5
    assert summary.num_classes == 10 and summary.input_shape == [1, 8, 8]


@pytest.mark.parametrize(
    ("maximize", "objective"), [(True, 0.8), (False, 0.3)], ids=["accuracy", "loss"]
)
def test_the_objective_value_follows_the_studys_direction(
    maximize: bool, objective: float
) -> None:
    # The best accuracy (epoch 1) and the best loss (epoch 2) come from different epochs.
    records = [_record(1, val_acc=0.8, val_loss=0.5), _record(2, val_acc=0.6, val_loss=0.3)]
    assert summarize(records, facts=FACTS, maximize=maximize).objective_value == objective


def test_a_tie_for_the_best_accuracy_names_the_first_epoch() -> None:
    records = [_record(e, val_acc=acc, val_loss=1.0) for e, acc in ((1, 0.5), (2, 0.9), (3, 0.9))]
    assert summarize(records, facts=FACTS, maximize=True).best_epoch == 2


def test_a_run_without_a_finite_epoch_has_no_best_and_no_objective() -> None:
    records = [_record(1, val_acc=NAN, val_loss=NAN), _record(2, val_acc=INF, val_loss=NAN)]
    summary = summarize(records, facts=FACTS, maximize=False)
    assert (summary.best_val_acc, summary.best_epoch, summary.best_val_loss) == (None, None, None)
    assert summary.objective_value is None


# -- the recorder and the queue on a real database --------------------------------------


def _finish_with(db: Database, *, state: TrialState, val_acc: float, val_loss: float) -> None:
    claim = queue.claim_next(db, worker="other", device="cpu")
    assert claim is not None
    records = [_record(1, val_acc=val_acc, val_loss=val_loss)]
    maximize = claim.spec.objective is Objective.VAL_ACC
    summary = summarize(records, facts=FACTS, maximize=maximize)
    assert queue.finish(db, claim, state=state, summary=summary)


def _recorder(db: Database, tmp_path: Path, *, val_acc: float, val_loss: float) -> EpochRecorder:
    claim = queue.claim_next(db, worker="mine", device="cpu")
    assert claim is not None
    records = [
        _record(1, val_acc=val_acc / 2, val_loss=2.0),
        _record(2, val_acc=val_acc, val_loss=val_loss),
    ]
    return record_completed_run(
        db, claim, [EpochRecord(**r) for r in records], data_dir=tmp_path
    )


def _submit(db: Database, tmp_path: Path, **spec: Any) -> int:
    search = {"grid": [0.1, 0.05, 0.02, 0.01]}
    study = store.submit_study(
        db, parse_spec(tiny_spec(search=search, max_parallel=4, **spec)), artifacts_dir=tmp_path
    )
    return study.id


def test_each_recorded_epoch_stores_the_summary_so_far(db: Database, tmp_path: Path) -> None:
    study_id = _submit(db, tmp_path)
    recorder = _recorder(db, tmp_path, val_acc=0.6, val_loss=0.7)
    trial = store.list_trials(db, study_id).data[0]
    assert trial.epochs_done == 2
    assert (trial.best_val_acc, trial.final_val_acc, trial.final_val_loss) == (0.6, 0.6, 0.7)
    assert recorder.summary().objective_value == 0.6


@pytest.mark.parametrize(
    ("mine", "expected"), [(0.5, 0.8), (0.95, 0.95)], ids=["another-is-best", "mine-is-best"]
)
def test_the_diagnosers_context_is_the_best_complete_trial_counting_the_run_itself(
    db: Database, tmp_path: Path, mine: float, expected: float
) -> None:
    _submit(db, tmp_path)
    _finish_with(db, state=TrialState.COMPLETE, val_acc=0.8, val_loss=0.6)
    _finish_with(db, state=TrialState.PRUNED, val_acc=0.99, val_loss=0.1)  # not complete
    _finish_with(db, state=TrialState.COMPLETE, val_acc=0.7, val_loss=0.5)
    diagnosis = _recorder(db, tmp_path, val_acc=mine, val_loss=1.0).diagnose()
    assert diagnosis is not None
    assert diagnosis.evidence.study_best_val_acc == pytest.approx(expected)


def test_a_loss_minimizing_study_holds_a_run_to_its_lowest_loss_trials_accuracy(
    db: Database, tmp_path: Path
) -> None:
    _submit(db, tmp_path, objective="val_loss")
    _finish_with(db, state=TrialState.COMPLETE, val_acc=0.9, val_loss=0.6)
    _finish_with(db, state=TrialState.COMPLETE, val_acc=0.8, val_loss=0.2)  # the best trial
    diagnosis = _recorder(db, tmp_path, val_acc=0.5, val_loss=1.0).diagnose()
    assert diagnosis is not None and diagnosis.evidence.study_best_val_acc == pytest.approx(0.8)


def test_complete_summaries_list_complete_slots_with_their_numbers_losslessly(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path)
    _finish_with(db, state=TrialState.COMPLETE, val_acc=0.8, val_loss=INF)
    _finish_with(db, state=TrialState.FAILED, val_acc=0.9, val_loss=0.1)
    listed = queue.complete_summaries(db, study_id)
    assert [c.number for c in listed] == [0]
    assert listed[0].summary.best_val_acc == 0.8 and listed[0].summary.final_val_loss == INF
    assert queue.complete_summaries(db, study_id + 1) == []


def test_open_slots_are_the_waiting_and_running_ones_of_any_study(
    db: Database, tmp_path: Path
) -> None:
    assert not queue.has_open_slots(db)
    study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    assert queue.has_open_slots(db)  # waiting
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None and queue.has_open_slots(db)  # running
    assert queue.finish(db, claim, state=TrialState.COMPLETE)
    assert not queue.has_open_slots(db)
    assert store.get_study(db, study.id).status.value == "completed"
