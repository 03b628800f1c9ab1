"""Real worker processes on a real database: exactly once with 4 workers, kill -9 of a
worker mid-trial, cancellation at the next epoch, and Optuna agreeing with the store."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.artifacts import get_all_artifact_meta
from optuna.trial import TrialState as OptunaState
from optuna_dashboard._note import get_note_from_system_attrs

from studies import store
from studies.db import Database, StudyStatus, TrialState, WorkerRow
from studies.optuna_bridge import close_storages
from studies.schema_setup import create_schema
from studies.spec import parse_spec
from tests.studies.conftest import optuna_trials, start_worker_process, tiny_spec, worker_options
from tests.waiting import wait_until


class Workers:
    """Worker processes started with ``sweepdoc``'s own entry point, run_worker."""

    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, count: int, **options: Any) -> None:
        for _ in range(count):
            name = f"w{len(self.procs)}"
            values = {"poll_interval_s": 0.2, "torch_threads": 1, **options}
            opts = worker_options(self.url, self.tmp_path, name, **values)
            self.procs.append(start_worker_process(opts, self.tmp_path / f"worker-{name}.log"))

    def wait(self, timeout: float = 120.0) -> list[int]:
        return [p.wait(timeout=timeout) for p in self.procs]

    def terminate(self) -> list[int]:
        """SIGTERM every worker (what a service manager sends) and collect exit codes."""
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        return self.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.tmp_path.glob("worker-*.log")))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait()


@pytest.fixture
def workers(db_url: str, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(db_url, tmp_path)
    yield group
    group.stop()


def test_four_workers_run_every_grid_point_exactly_once_and_optuna_agrees(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    # The workers start on an empty database: all four (and this process) create the
    # schema at once, which must be safe.
    workers.start(4, exit_when_idle=False)
    db = Database(db_url)
    create_schema(db)
    try:
        _four_workers_exactly_once(db, workers, tmp_path)
    finally:
        db.dispose()
        close_storages()


def _four_workers_exactly_once(db: Database, workers: Workers, tmp_path: Path) -> None:
    grid = [0.2, 0.1, 0.05, 0.02, 0.01, 0.005]
    spec = parse_spec(tiny_spec(search={"grid": grid}, max_parallel=4))
    # All four polling before the study exists, so they race for its slots: a worker still
    # warming up (importing torch, seconds on a busy machine) would find the study done.
    wait_until(lambda: store.readiness(db).workers_seen == 4, "four workers polling")
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    wait_until(
        lambda: (
            store.get_study(db, study.id).status is not StudyStatus.QUEUED
            and store.get_study(db, study.id).progress == 1.0
        ),
        "the study to finish",
        timeout_s=120,
    )
    # SIGTERM: idle workers exit cleanly.
    assert workers.terminate() == [0, 0, 0, 0], workers.logs()

    final = store.get_study(db, study.id)
    assert final.status is StudyStatus.COMPLETED and final.progress == 1.0
    assert final.best_trial is not None
    trials = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
    assert sorted(t.params["lr"] for t in trials) == sorted(grid)
    for trial in trials:
        assert trial.state is TrialState.COMPLETE, (trial.error, workers.logs())
        assert trial.attempt == 1 and [a.state for a in trial.attempts] == [TrialState.COMPLETE]
        assert trial.epochs_done == 1 and len(trial.curves["val_acc"]) == 1
        assert trial.label is not None and trial.diagnosis is not None

    # Optuna's own view (what the dashboard shows) is the same set of trials.
    in_optuna = optuna_trials(db.url, final.optuna_study_name)
    assert len(in_optuna) == len(grid)
    by_number = {t.number: t for t in in_optuna}
    for trial in trials:
        assert trial.optuna_trial_number is not None
        frozen = by_number[trial.optuna_trial_number]
        assert frozen.state == OptunaState.COMPLETE
        assert frozen.params == trial.params
        assert frozen.value == pytest.approx(trial.best_val_acc)
        assert frozen.user_attrs["label"] == trial.label
        assert frozen.user_attrs["sweepdoc_trial_id"] == trial.id
        assert frozen.intermediate_values  # the per-epoch reports
    storage = optuna.storages.RDBStorage(db.url)
    try:
        system_attrs = storage.get_study_system_attrs(
            storage.get_study_id_from_name(final.optuna_study_name)
        )
        for frozen in in_optuna:
            note = get_note_from_system_attrs(system_attrs, frozen._trial_id)["body"]
            assert frozen.user_attrs["label"] in note and "Evidence" in note
            metas = get_all_artifact_meta(frozen, storage=storage)
            assert [m.mimetype for m in metas] == ["image/png"]
    finally:
        storage.engine.dispose()


def test_kill_9_of_a_worker_mid_trial_fails_its_attempt_and_the_point_runs_again_once(
    db: Database, workers: Workers, tmp_path: Path
) -> None:
    grid = [0.1, 0.01]
    spec = parse_spec(
        tiny_spec(search={"grid": grid}, train={"epochs": 20, "batch_size": 8}, max_parallel=2)
    )
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    # The victim alone first, with a short grace so its death is noticed soon; the survivor,
    # started once the victim is mid-run, has a long one: on two busy cores a live worker's
    # heartbeat can be late by seconds, and only the victim may ever be reaped here. Each
    # slot is judged by its own worker's grace, whoever reaps it (the survivor, here).
    workers.start(1, heartbeat_interval_s=0.5, stale_after_s=10.0)

    def running_with_an_epoch() -> Any:
        return next(
            (
                t
                for t in store.list_trials(db, study.id).data
                if t.state is TrialState.RUNNING and t.epochs_done >= 1
            ),
            None,
        )

    victim_trial = wait_until(running_with_an_epoch, "a trial to be mid-run")
    victim_name = store.get_trial(db, victim_trial.id).worker
    with db.session() as session:
        victim = session.get_one(WorkerRow, victim_name)
        victim_pid = victim.pid
    workers.start(1, heartbeat_interval_s=0.5, stale_after_s=120.0)
    os.kill(victim_pid, signal.SIGKILL)

    def reaped() -> Any:
        attempts = store.get_trial(db, victim_trial.id).attempts
        return attempts and attempts[0].state is TrialState.FAILED

    # How soon is bench/reap_latency.py's to measure; here only that it happens.
    try:
        wait_until(reaped, "the dead worker's attempt to be failed", timeout_s=180)
    except AssertionError as exc:
        # Once in a CI run this timed out with no clue why: say what the survivor did.
        exit_codes = [p.poll() for p in workers.procs if p.pid != victim_pid]
        message = f"{exc}; the survivors' exit codes {exit_codes}\n{workers.logs()}"
        raise AssertionError(message) from None
    survivors = [p for p in workers.procs if p.pid != victim_pid]
    assert [p.wait(timeout=120) for p in survivors] == [0], workers.logs()

    final = store.get_study(db, study.id)
    assert final.status is StudyStatus.COMPLETED, final.counts
    detail = store.get_trial(db, victim_trial.id)
    assert detail.state is TrialState.COMPLETE and detail.attempt == 2
    assert [a.state for a in detail.attempts] == [TrialState.FAILED, TrialState.COMPLETE]
    assert detail.attempts[0].worker == victim_name and "heartbeat" in (
        detail.attempts[0].error or ""
    )
    assert detail.epochs_done == 20 and len(detail.curves["val_acc"]) == 20  # a fresh run
    trials = store.list_trials(db, study.id).data
    assert sorted(t.params["lr"] for t in trials) == sorted(grid)
    assert all(t.state is TrialState.COMPLETE for t in trials)

    # In Optuna: each point completed exactly once, plus the killed attempt as FAIL.
    in_optuna = optuna_trials(db.url, final.optuna_study_name)
    completed = collections.Counter(
        t.params["lr"] for t in in_optuna if t.state == OptunaState.COMPLETE
    )
    assert completed == dict.fromkeys(grid, 1)
    failed = [t for t in in_optuna if t.state == OptunaState.FAIL]
    assert [t.params for t in failed] == [victim_trial.params]
    assert len(in_optuna) == len(grid) + 1


def test_cancel_stops_the_running_trial_at_its_next_epoch_and_keeps_finished_results(
    db: Database, workers: Workers, tmp_path: Path
) -> None:
    # One lr, three batch sizes: slot 0 is quick, slot 1 is slow, slot 2 never starts.
    spec = parse_spec(
        tiny_spec(
            search={"grid": [0.05], "extra": {"batch_size": [128, 8, 16]}},
            train={"epochs": 40},
            max_parallel=1,
        )
    )
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    workers.start(1)
    slots = [t.id for t in store.list_trials(db, study.id).data]

    def second_slot_mid_run() -> bool:
        trial = store.get_trial(db, slots[1])
        return trial.state is TrialState.RUNNING and trial.epochs_done >= 1

    wait_until(second_slot_mid_run, "the second slot to be mid-run")
    store.cancel_study(db, study.id)
    assert workers.wait() == [0], workers.logs()

    first, second, third = (store.get_trial(db, i) for i in slots)
    assert first.state is TrialState.COMPLETE and first.epochs_done == 40
    assert first.label is not None and len(first.curves["val_acc"]) == 40
    assert second.state is TrialState.PRUNED and second.stop_reason == "study cancelled"
    assert 1 <= second.epochs_done < 40
    assert third.state is TrialState.PRUNED and third.epochs_done == 0
    assert store.get_study(db, study.id).status is StudyStatus.CANCELLED
    states = {
        t.number: t.state
        for t in optuna_trials(db.url, store.get_study(db, study.id).optuna_study_name)
    }
    assert states[first.optuna_trial_number] == OptunaState.COMPLETE  # type: ignore[index]
    assert states[second.optuna_trial_number] == OptunaState.PRUNED  # type: ignore[index]
