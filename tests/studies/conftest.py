"""Fixtures of the studies tests: a real database (SQLite file or PostgreSQL) per test."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import optuna
import pytest

from studies import optuna_bridge, queue
from studies.db import Database, TrialState
from studies.diagnosis import Curves, diagnose_run
from studies.optuna_bridge import close_storages
from studies.recorder import EpochRecorder
from studies.results import TrialSummary
from studies.schema_setup import create_schema
from studies.worker import WorkerOptions, run_worker
from trainer import DataFacts, EpochRecord, History, RunStatus, curves_json


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sweepdoc.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    create_schema(database)
    yield database
    database.dispose()
    close_storages()


class _Disposable(Protocol):
    def dispose(self) -> None: ...


DisposableT = TypeVar("DisposableT", bound=_Disposable)


@contextmanager
def disposed(resource: DisposableT) -> Iterator[DisposableT]:
    """*resource* (a ``Database`` or an SQLAlchemy ``Engine``) for the block, disposed when it
    ends (its pooled connections closed, as ``contextlib.closing`` closes a file): the next
    step opens the file, or drops the database, without a connection left behind."""
    try:
        yield resource
    finally:
        resource.dispose()


def tiny_spec(**overrides: Any) -> dict[str, Any]:
    """A study whose trials take about a second each on one CPU thread.

    ``data``, ``model`` and ``train`` overrides are merged; ``search`` replaces the default.
    """
    spec: dict[str, Any] = {
        "dataset": "digits",
        "data": {"train_subset": 300},
        "model": {"width": 4, "stages": 1},
        "train": {"epochs": 1, "batch_size": 64, "schedule": "none"},
        "search": {"sampler": "grid", "grid": [0.1, 0.01]},
        # One trial per claim, as these tests count attempts and workers; packed runs
        # (several slots as one model) have their own tests (test_pack_*.py).
        "max_pack": 1,
    }
    for key, value in overrides.items():
        if key != "search" and isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def worker_options(database_url: str, tmp_path: Path, name: str, **overrides: Any) -> WorkerOptions:
    """Options of a test's worker on *database_url*: data under ``tmp_path/data``, artifacts
    under ``tmp_path/artifacts``, a 0.1 s poll, and an exit once no slot is left; *overrides*
    set any other option (a device, a thread count, a checkpoint cap)."""
    defaults: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": tmp_path / "data",
        "artifacts_dir": tmp_path / "artifacts",
        "name": name,
        "poll_interval_s": 0.1,
        "exit_when_idle": True,
    }
    return WorkerOptions.model_validate(defaults | overrides)


@contextmanager
def worker_thread(options: WorkerOptions) -> Iterator[threading.Thread]:
    """``run_worker(options)`` in a thread while the block runs; when it ends, the worker is
    asked to stop (what SIGTERM does: a running trial is handed back at its next epoch) and
    waited for."""
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(options,), kwargs={"stop": stop})
    thread.start()
    try:
        yield thread
    finally:
        stop.set()
        thread.join(120)


# A worker process as ``sweepdoc worker`` runs one: run_worker in an interpreter of its own.
_WORKER_MAIN = (
    "import sys\n"
    "from studies.worker import WorkerOptions, run_worker\n"
    "run_worker(WorkerOptions.model_validate_json(sys.argv[1]))\n"
)


def start_worker_process(options: WorkerOptions, log_path: Path) -> subprocess.Popen[bytes]:
    """A process that runs ``run_worker(options)`` (a test can kill it), its output in
    *log_path*."""
    with log_path.open("wb") as log:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-c", _WORKER_MAIN, options.model_dump_json()],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def optuna_trials(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The trials as Optuna itself reads them from *url* (what the dashboard shows), through
    a storage of their own (what ``optuna.load_study(storage=url)`` builds), closed after."""
    storage = optuna.storages.RDBStorage(url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    finally:
        storage.engine.dispose()


def start_claimed_trial(db: Database, claim: queue.Claim) -> dict[str, object]:
    """What a worker does right after a claim: start the Optuna trial, record it; its params."""
    study = optuna_bridge.load_study(db.url, claim.optuna_study_name, claim.spec)
    trial, params = optuna_bridge.start_trial(
        study, claim.spec, enqueued_trial_id=claim.enqueued_optuna_trial_id, params=claim.params
    )
    assert queue.start_attempt(
        db, claim, params=params, optuna_trial_id=trial._trial_id, optuna_trial_number=trial.number
    )
    return params


def record_completed_run(
    db: Database, claim: queue.Claim, records: list[EpochRecord], *, data_dir: Path
) -> EpochRecorder:
    """What the worker's recorder makes of *claim*'s slot trained to completion with
    *records* (on the digits' facts: 10 classes, 1×8×8 images, 240 training and 60
    validation): every epoch recorded, the run diagnosed; the recorder."""
    recorder = EpochRecorder(
        db, claim, stop=threading.Event(), lost=threading.Event(), outage_grace_s=1.0
    )
    history = History(
        config=claim.spec.to_run_config({"lr": 0.1}, data_dir=data_dir, device="cpu"),
        data=DataFacts(10, (1, 8, 8), train_size=240, val_size=60, mean=[0.5], std=[0.2]),
        device="cpu",
        records=records,
        status=RunStatus.COMPLETED,
    )
    recorder.record_unseen(history)
    return recorder


def finish_diagnosed(
    db: Database,
    claim: queue.Claim,
    records: list[dict[str, Any]],
    *,
    state: TrialState,
    summary: TrialSummary,
) -> None:
    """Finish *claim*'s slot in *state* with the real diagnosis of *records* (10 classes),
    stored as the recorder stores it: label, confidence and the whole diagnosis."""
    diagnosis = diagnose_run(Curves.model_validate(curves_json(records, 10)))
    assert queue.finish(
        db,
        claim,
        state=state,
        label=diagnosis.label,
        confidence=diagnosis.confidence,
        diagnosis=diagnosis.model_dump(),
        summary=summary,
    )
