"""What a worker records for each kind of ending, run in this process (no start-up cost):
an error fails that trial alone, a diverging run stops at once as pruned/diverged, a stop
request hands the running trial back to the queue."""

from __future__ import annotations

import collections
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState as OptunaState
from sqlalchemy.exc import OperationalError

from studies import optuna_bridge, queue, store
from studies.db import Database, TrialState, utcnow
from studies.spec import parse_spec
from studies.worker import WorkerOptions, run_worker
from tests.studies.conftest import optuna_trials, tiny_spec, worker_options, worker_thread


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _options(db: Database, tmp_path: Path, **overrides: Any) -> WorkerOptions:
    return worker_options(db.url, tmp_path, "inproc", **overrides)


def test_a_trial_that_raises_fails_alone_with_its_error_and_the_worker_goes_on(
    db: Database, tmp_path: Path
) -> None:
    # MNIST is not under the (empty) data root and downloading is off: the trainer raises.
    broken = store.submit_study(
        db, parse_spec(tiny_spec(dataset="mnist", search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    fine = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    assert run_worker(_options(db, tmp_path)) == 2

    failed = store.get_trial(db, store.list_trials(db, broken.id).data[0].id)
    assert failed.state is TrialState.FAILED
    assert failed.error is not None and "DatasetError" in failed.error and "mnist" in failed.error
    assert store.list_trials(db, fine.id).data[0].state is TrialState.COMPLETE
    trials = optuna_trials(db.url, broken.optuna_study_name)
    assert [t.state for t in trials] == [OptunaState.FAIL]


def test_a_diverging_run_stops_at_once_is_pruned_and_labeled_diverged(
    db: Database, tmp_path: Path
) -> None:
    spec = tiny_spec(
        search={"grid": [10.0]},
        model={"norm": "none"},
        train={"epochs": 10, "momentum": 0.9, "batch_size": 16},
    )
    study = store.submit_study(db, parse_spec(spec), artifacts_dir=tmp_path)
    run_worker(_options(db, tmp_path))
    trial = store.get_trial(db, store.list_trials(db, study.id).data[0].id)
    assert trial.state is TrialState.PRUNED, trial.stop_reason
    assert trial.label == "diverged" and trial.epochs_done < 10
    assert trial.diagnosis is not None and trial.diagnosis["label"] == "diverged"
    assert (
        None in trial.curves["train_loss"]
        or None in trial.curves["val_loss"]
        or ("divergence" in (trial.stop_reason or ""))
    )
    assert store.trial_curves_png(db, trial.id).startswith(b"\x89PNG")
    assert store.study_lr_png(db, study.id).startswith(b"\x89PNG")


def test_a_stop_request_hands_the_running_trial_back_without_using_a_retry(
    db: Database, tmp_path: Path
) -> None:
    spec = tiny_spec(search={"grid": [0.05]}, train={"epochs": 200, "batch_size": 8})
    study = store.submit_study(db, parse_spec(spec), artifacts_dir=tmp_path)
    slot = store.list_trials(db, study.id).data[0].id
    with worker_thread(_options(db, tmp_path, exit_when_idle=False)) as thread:
        while store.get_trial(db, slot).epochs_done < 1:
            thread.join(0.05)
            assert thread.is_alive()
    trial = store.get_trial(db, slot)
    assert trial.state is TrialState.WAITING and trial.attempt == 0 and trial.epochs_done == 0
    assert [a.error for a in trial.attempts] == [
        "released: worker stopped before the trial finished"
    ]
    # Its Optuna trial (found by number through the storage's public API) is closed as FAIL,
    # and the history keeps that number for the released attempt.
    closed = optuna_trials(db.url, study.optuna_study_name)
    assert [t.state for t in closed] == [OptunaState.FAIL]
    assert [a.optuna_trial_number for a in trial.attempts] == [closed[0].number]
    # The next claim gets it as a first attempt again.
    again = queue.claim_next(db, worker="next", device="cpu")
    assert again is not None and again.trial_id == slot and again.attempt == 1


@pytest.mark.parametrize(("sampler", "pruner"), [("random", "median"), ("tpe", "hyperband")])
def test_sampled_studies_run_every_slot_with_the_samplers_params_and_the_pruner(
    db: Database, tmp_path: Path, sampler: str, pruner: str
) -> None:
    spec = tiny_spec(
        search={
            "sampler": sampler,
            "n_trials": 5,
            "lr_low": 1e-4,
            "lr_high": 1e-1,
            "extra": {"width": [4, 6]},
        },
        pruner=pruner,
        train={"epochs": 4},
    )
    study = store.submit_study(db, parse_spec(spec), artifacts_dir=tmp_path)
    assert run_worker(_options(db, tmp_path)) == 5
    trials = store.list_trials(db, study.id).data
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(1e-4 <= t.params["lr"] <= 1e-1 and t.params["width"] in (4, 6) for t in trials)
    assert len({t.params["lr"] for t in trials}) == 5
    frozen = optuna_trials(db.url, study.optuna_study_name)
    expected = {TrialState.COMPLETE: OptunaState.COMPLETE, TrialState.PRUNED: OptunaState.PRUNED}
    assert sorted((t.number, t.state) for t in frozen) == sorted(
        (t.optuna_trial_number, expected[t.state]) for t in trials
    )
    assert all(
        t.params == trial.params
        for t, trial in zip(
            sorted(frozen, key=lambda f: f.number),
            sorted(trials, key=lambda t: t.optuna_trial_number or 0),
            strict=True,
        )
    )


def test_stored_diagnoses_feed_the_trial_and_study_summaries(db: Database, tmp_path: Path) -> None:
    spec = tiny_spec(search={"grid": [0.1, 0.01, 0.001]}, train={"epochs": 3})
    study = store.submit_study(db, parse_spec(spec), artifacts_dir=tmp_path)
    run_worker(_options(db, tmp_path))
    trials = store.list_trials(db, study.id).data
    for trial in trials:
        diagnosis = store.trial_diagnosis(db, trial.id)
        assert diagnosis.label.value == trial.label
        assert diagnosis.confidence == pytest.approx(trial.confidence)
    summary = store.study_diagnosis(db, study.id)
    assert sorted(entry.lr for entry in summary.labels_by_lr) == [0.001, 0.01, 0.1]
    followup = summary.followup_spec  # a typed StudySpec, submittable as is
    assert followup is not None and followup.dataset == "digits"


def test_an_error_after_training_fails_the_trial_not_the_worker(
    db: Database, tmp_path: Path
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the artifacts folder should be")
    study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1, 0.01]})), artifacts_dir=tmp_path / "a"
    )
    assert run_worker(_options(db, tmp_path, artifacts_dir=blocked)) == 2
    for trial in store.list_trials(db, study.id).data:
        detail = store.get_trial(db, trial.id)
        assert detail.state is TrialState.FAILED
        assert detail.error is not None and "blocked" in detail.error
        assert detail.epochs_done == 1  # the training itself was recorded
    frozen = optuna_trials(db.url, study.optuna_study_name)
    assert [t.state for t in frozen] == [OptunaState.FAIL, OptunaState.FAIL]


def test_a_transient_database_error_while_a_trial_starts_is_retried_not_fatal(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14, item 9: the first try to start the slot's Optuna trial meets a dropped
    connection (injected: the real function runs from the second call on)."""
    study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    real_start = optuna_bridge.start_trial
    calls: list[int] = []

    def drops_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("UPDATE trials", {}, Exception("server closed the connection"))
        return real_start(*args, **kwargs)

    monkeypatch.setattr(optuna_bridge, "start_trial", drops_once)
    assert run_worker(_options(db, tmp_path)) == 1

    assert len(calls) == 2
    trial = store.get_trial(db, store.list_trials(db, study.id).data[0].id)
    assert trial.state is TrialState.COMPLETE and trial.attempt == 1, trial.error
    assert [t.state for t in optuna_trials(db.url, study.optuna_study_name)] == [
        OptunaState.COMPLETE
    ]


@pytest.mark.parametrize(
    "stalls_in",
    ["annotate", "tell"],
    ids=["before-storing-its-result", "right-after-telling-optuna"],
)
def test_a_worker_that_stalls_past_its_grace_at_the_end_never_completes_a_point_twice(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stalls_in: str
) -> None:
    """Issue 14, item 12: the worker stalls (a GC pause, SIGSTOP, a swapped-out host) at the
    end of its run, long enough to be reaped: the reaper's work is done at that moment
    (``reap_stale`` as of an hour later), then the worker carries on. The slot runs again
    (this worker claims it next) and completes exactly once, in Optuna too."""
    study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    real = getattr(optuna_bridge, stalls_in)
    stalled: list[queue.Reaped] = []

    def stalls_once(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        if not stalled:
            stalled.extend(queue.reap_stale(db, now=utcnow() + timedelta(hours=1)))
        return result

    monkeypatch.setattr(optuna_bridge, stalls_in, stalls_once)
    run_worker(_options(db, tmp_path))

    slot = store.get_trial(db, store.list_trials(db, study.id).data[0].id)
    frozen = optuna_trials(db.url, study.optuna_study_name)
    states = collections.Counter(t.state for t in frozen)
    assert states[OptunaState.COMPLETE] == 1, frozen
    assert slot.state is TrialState.COMPLETE
    if stalled:  # reaped while it stalled: its result was dropped, its Optuna trial failed
        assert slot.attempt == 2
        assert [a.state for a in slot.attempts] == [TrialState.FAILED, TrialState.COMPLETE]
        assert states == {OptunaState.COMPLETE: 1, OptunaState.FAIL: 1}
    else:  # its result was stored before the stall: nothing left to reap
        assert stalls_in == "tell" and slot.attempt == 1 and len(frozen) == 1
