"""Resume instead of restart (issue 14, item 13): a slot whose worker was stopped or killed
mid-trial continues on the next worker from its last epoch state, and ends with exactly the
curves of an uninterrupted run of the same seed (CPU), every epoch stored once for the
attempt that finished it and reported once to the Optuna trial that completed it."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from optuna.trial import TrialState as OptunaState
from sqlalchemy import select

from service.supervisor import cpu_threads_per_worker
from studies import store
from studies.db import Database, EpochRow, StudyStatus, TrialRow, TrialState, WorkerRow
from studies.resume import epoch_state_path, sweep
from studies.schema_setup import create_schema
from studies.spec import StudySpec, parse_spec
from studies.worker import run_worker
from tests.service.serve_process import ServeProcess, serving
from tests.studies.conftest import optuna_trials, tiny_spec, worker_options, worker_thread
from tests.waiting import wait_until
from trainer import METRIC_KEYS, train

EPOCHS = 16
WORKERS = 2
LR = 0.05


def _spec() -> StudySpec:
    # Momentum, a cosine schedule, batch norm, dropout and crop augmentation: every part
    # of the state a resumed run needs is in play.
    return parse_spec(
        tiny_spec(
            search={"grid": [LR]},
            data={"train_subset": 300},
            model={"dropout": 0.2, "norm": "batch"},
            train={"epochs": EPOCHS, "batch_size": 8, "schedule": "cosine"},
        )
    )


def _uninterrupted_curves(spec: StudySpec, data_dir: Path, threads: int) -> dict[str, Any]:
    """The same slot trained in one go, in this process, with the workers' thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        config = spec.to_run_config({"lr": LR}, data_dir=data_dir, device="cpu")
        return train(config).curves()
    finally:
        torch.set_num_threads(before)


def _rows(db: Database, trial_id: int) -> dict[int, list[dict[str, Any]]]:
    """Every stored epoch record of the slot, by attempt, in epoch order."""
    with db.session() as session:
        rows = session.execute(
            select(EpochRow.attempt, EpochRow.record)
            .where(EpochRow.trial_id == trial_id)
            .order_by(EpochRow.attempt, EpochRow.epoch)
        ).all()
    out: dict[int, list[dict[str, Any]]] = {}
    for attempt, record in rows:
        out.setdefault(attempt, []).append(record)
    return out


def _check_resumed(
    db: Database,
    trial_id: int,
    *,
    before: list[dict[str, Any]],
    kept: int,
    reference: dict[str, Any],
    artifacts_dir: Path,
) -> None:
    """The finished slot continued the first *kept* epochs of *before* (the interrupted
    attempt's rows) and equals *reference*; its epochs and Optuna's reports have no gap and
    no duplicate."""
    detail = store.get_trial(db, trial_id)
    assert detail.state is TrialState.COMPLETE, (detail.error, detail.attempts)
    # Exactly the curves of the uninterrupted run, every float bit for bit.
    assert {k: detail.curves[k] for k in METRIC_KEYS} == {k: reference[k] for k in METRIC_KEYS}
    assert detail.curves["lr"] == reference["lr"]
    # The finishing attempt's rows: epochs 1..EPOCHS, once each.
    final = _rows(db, trial_id)[detail.attempt]
    assert [r["epoch"] for r in final] == list(range(1, EPOCHS + 1))
    assert detail.epochs_done == EPOCHS
    # Resumed, not restarted: the kept epochs were not trained again (a retrained epoch
    # has its own wall time).
    assert kept >= 2
    assert [r["seconds"] for r in final[:kept]] == [r["seconds"] for r in before[:kept]]
    # Optuna: the trial that completed the point holds every epoch's report once.
    frozen = optuna_trials(db.url, store.get_study(db, detail.study_id).optuna_study_name)
    completed = [t for t in frozen if t.state == OptunaState.COMPLETE]
    assert len(completed) == 1 and completed[0].number == detail.optuna_trial_number
    assert completed[0].intermediate_values == {
        epoch: reference["val_acc"][epoch - 1] for epoch in range(1, EPOCHS + 1)
    }
    assert all(t.state == OptunaState.FAIL for t in frozen if t is not completed[0])
    # The slot is done: its epoch state is gone.
    assert not epoch_state_path(artifacts_dir, trial_id).exists()


def test_a_stopped_worker_hands_back_its_slot_and_the_next_one_resumes_it(
    db: Database, tmp_path: Path
) -> None:
    spec = _spec()
    options = worker_options(db.url, tmp_path, "first", device="cpu", torch_threads=1)
    artifacts = options.artifacts_dir
    study = store.submit_study(db, spec, artifacts_dir=artifacts)
    slot = store.list_trials(db, study.id).data[0].id
    with worker_thread(options):  # stopped at the end: it hands the slot back
        wait_until(
            lambda: store.get_trial(db, slot).epochs_done >= 3, "three epochs stored", timeout_s=180
        )
    released = store.get_trial(db, slot)
    assert released.state is TrialState.WAITING and released.attempt == 0
    before = _rows(db, slot)[1]
    assert 3 <= len(before) < EPOCHS
    # Its state after the last stored epoch waits beside the rows for the next attempt.
    assert epoch_state_path(artifacts, slot).exists()

    again = options.model_copy(update={"name": "second"})
    assert run_worker(again) == 1
    reference = _uninterrupted_curves(spec, tmp_path / "data", threads=1)
    # A hand-back stops after storing the epoch and its state: every stored epoch is kept.
    _check_resumed(
        db, slot, before=before, kept=len(before), reference=reference, artifacts_dir=artifacts
    )
    detail = store.get_trial(db, slot)
    assert detail.attempt == 1  # a hand-back uses no retry
    assert [a.error for a in detail.attempts] == [
        "released: worker stopped before the trial finished",
        None,
    ]


@pytest.mark.parametrize(
    "sig",
    [
        # The hand-back itself is tested in-process above; through serve it is in the slow set.
        pytest.param(signal.SIGTERM, id="sigterm", marks=pytest.mark.slow),
        pytest.param(signal.SIGKILL, id="kill-9"),
    ],
)
def test_serve_resumes_a_trial_whose_worker_was_stopped_or_killed(
    tmp_path: Path, sig: signal.Signals
) -> None:
    home = tmp_path / "home"
    url = f"sqlite:///{home / 'sweepdoc.db'}"
    # CPU only, also on a GPU machine: the curves are compared bit for bit with a CPU run.
    # Two workers: single-threaded each on two cores, and the slot's next attempt may run on
    # the other one (already warm) or on the victim's replacement.
    process = ServeProcess(
        home, database_url=url, workers=WORKERS, env_overrides={"CUDA_VISIBLE_DEVICES": ""}
    )
    with serving(process, workers=WORKERS):
        db = Database(url)
        create_schema(db)
        try:
            study = store.submit_study(db, _spec(), artifacts_dir=home / "artifacts")
            slot = store.list_trials(db, study.id).data[0].id

            def mid_run() -> Any:
                trial = store.get_trial(db, slot)
                return trial if trial.epochs_done >= 3 else None

            victim = wait_until(mid_run, "the trial to be mid-run", timeout_s=180).worker
            with db.session() as session:
                pid = session.get_one(WorkerRow, victim).pid
            os.kill(pid, sig)
            wait_until(
                lambda: store.get_trial(db, slot).attempts,
                "the interrupted attempt's end",
                timeout_s=180,
            )
            first = store.get_trial(db, slot).attempts[0]
            assert first.worker == victim
            before = _rows(db, slot)[first.attempt]
            final = process.wait_for_study(study.id, timeout_s=300)
            assert final["status"] == StudyStatus.COMPLETED, process.log()
            threads = cpu_threads_per_worker(WORKERS)  # what serve gives each CPU worker
            reference = _uninterrupted_curves(_spec(), home / "data", threads=threads)
            # A kill -9 may land between an epoch's row and its state: the last stored
            # epoch may be trained again, every one before it is kept.
            kept = len(before) if sig == signal.SIGTERM else len(before) - 1
            _check_resumed(
                db,
                slot,
                before=before,
                kept=kept,
                reference=reference,
                artifacts_dir=home / "artifacts",
            )
            assert "resumes after epoch" in process.log()
        finally:
            db.dispose()
            process.stop()


def test_sweep_deletes_the_states_no_attempt_will_continue(db: Database, tmp_path: Path) -> None:
    # Three slots: one finished, one still waiting, one of a cancelled study that ended
    # while it waited (no attempt of it ever finishes, so none deletes its state); and a
    # state whose slot does not exist any more.
    spec = parse_spec(tiny_spec(search={"grid": [0.1, 0.01]}))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path)
    finished, waiting = (t.id for t in store.list_trials(db, study.id).data)
    cancelled_study = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    cancelled = store.list_trials(db, cancelled_study.id).data[0].id
    store.cancel_study(db, cancelled_study.id)
    with db.session() as session:
        session.get_one(TrialRow, finished).state = TrialState.COMPLETE
    paths = {i: epoch_state_path(tmp_path, i) for i in (finished, waiting, cancelled, 9999)}
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"state")
    assert store.get_trial(db, cancelled).state is TrialState.PRUNED

    assert sweep(db, tmp_path) == 3
    assert [i for i, path in paths.items() if path.exists()] == [waiting]
    assert sweep(db, tmp_path) == 0
