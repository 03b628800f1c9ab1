"""Run one study of tiny trials with N `sweepdoc worker` processes on one database, and
measure it: throughput (trials and images per second), and on PostgreSQL the connections
every process really held.

Shared by ``tests/scale/test_scale_postgres.py``, ``bench/scale_workers.py`` and
``bench/gpu_check.py`` (workers sharing one GPU on SQLite). Workers are started exactly as an
operator starts them on another host (``sweepdoc worker``, settings in ``SWEEPDOC_*``
variables), so the pool settings travel the real way. On PostgreSQL, while they run, a
sampler reads ``pg_stat_activity`` every 0.1 s: sweepdoc names its connections
``sweepdoc-<role> <name> <engine>`` (``studies.db.engine_kwargs``), so each worker's count is
known; SQLite has no such view and reports 0 connections.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from studies import store
from studies.db import Database, TrialRow
from studies.optuna_bridge import close_storages
from studies.schema_setup import create_schema
from studies.spec import parse_spec


def tiny_grid_spec(trials: int, *, max_parallel: int) -> dict[str, Any]:
    """A grid study of *trials* learning rates whose trials take about a second each on one
    CPU thread (digits, a 300-image subset, a 4-channel one-stage CNN, one epoch)."""
    lrs = [round(10 ** (-4 + 3.5 * i / max(1, trials - 1)), 8) for i in range(trials)]
    return {
        "name": f"scale-{trials}",
        "dataset": "digits",
        "data": {"train_subset": 300},
        "model": {"width": 4, "stages": 1},
        "train": {"epochs": 1, "batch_size": 64, "schedule": "none"},
        "search": {"sampler": "grid", "grid": lrs},
        "max_parallel": max_parallel,
    }


@dataclass
class ScaleRun:
    """What one run measured."""

    workers: int
    trials: int
    wall_s: float  # first worker started → last worker exited (start-up included)
    active_s: float  # first trial claimed → last trial finished
    exit_codes: list[int]
    peak_connections: int  # sweepdoc's connections to the database at once, all processes
    peak_per_worker: int  # the most one worker process held at once
    study_id: int
    trained_images: int = 0  # training images seen, all trials and epochs together
    logs: str = field(repr=False, default="")

    @property
    def trials_per_minute(self) -> float:
        return 60.0 * self.trials / self.active_s if self.active_s > 0 else 0.0

    @property
    def images_per_s(self) -> float:
        """Training images per second of all workers together (first claim to last finish:
        evaluation, data loading and bookkeeping are inside the interval)."""
        return self.trained_images / self.active_s if self.active_s > 0 else 0.0

    def row(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "trials": self.trials,
            "wall_s": round(self.wall_s, 2),
            "active_s": round(self.active_s, 2),
            "trials_per_minute": round(self.trials_per_minute, 1),
            "images_per_s": round(self.images_per_s, 1),
            "peak_connections": self.peak_connections,
            "peak_connections_per_worker": self.peak_per_worker,
        }


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


class ConnectionSampler:
    """Peak connections to one database, in all and per sweepdoc process (application_name
    ``sweepdoc-<role> <name> <engine>``: the process is everything before the engine)."""

    def __init__(self, url: str, interval_s: float = 0.1) -> None:
        self._url = _plain(url)
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak_total = 0
        self.peak_per_process: collections.Counter[str] = collections.Counter()
        self._thread = threading.Thread(target=self._run, name="pg-sampler", daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg  # deferred: only PostgreSQL runs sample connections

        with psycopg.connect(self._url, autocommit=True) as conn:
            while not self._stop.wait(self._interval_s):
                names = [
                    row[0]
                    for row in conn.execute(
                        "SELECT application_name FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND application_name LIKE 'sweepdoc-%'"
                    )
                ]
                self.peak_total = max(self.peak_total, len(names))
                per_process = collections.Counter(name.rsplit(" ", 1)[0] for name in names)
                for process, count in per_process.items():
                    self.peak_per_process[process] = max(self.peak_per_process[process], count)


def _trained_images(db: Database, study_id: int) -> int:
    """Training images the study's trials went through: train size x epochs done."""
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.summary, TrialRow.epochs_done).where(TrialRow.study_id == study_id)
        ).all()
    return sum(
        (summary.train_size or 0) * epochs
        for summary, epochs in rows
        if summary is not None  # a slot that never trained has no summary
    )


def run_workers(
    url: str,
    *,
    workers: int,
    trials: int,
    home: Path,
    device: str = "cpu",
    timeout_s: float = 300,
    spec: dict[str, Any] | None = None,
    extra_env: dict[str, str] | None = None,
    torch_threads: int = 1,
) -> ScaleRun:
    """Submit *spec* (default: a *trials*-point ``tiny_grid_spec``; a given spec must have
    *trials* trials) to *url* and run it with *workers* `sweepdoc worker` processes on
    *device* (*torch_threads* torch threads each) until the queue is empty, *timeout_s* at most.
    *extra_env* adds variables to the workers' environment (``SWEEPDOC_DATA_DIR``).
    Connections are sampled on PostgreSQL only."""
    home.mkdir(parents=True, exist_ok=True)
    db = Database(url)
    try:
        create_schema(db)
        study = store.submit_study(
            db, parse_spec(spec or tiny_grid_spec(trials, max_parallel=workers)),
            artifacts_dir=home / "artifacts",
        )
    finally:
        db.dispose()
        close_storages()
    env = {
        **os.environ,
        "SWEEPDOC_DATABASE_URL": url,
        "SWEEPDOC_HOME": str(home),
        "SWEEPDOC_WORKER_POLL_INTERVAL_S": "0.2",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    logs = [home / f"worker-{i}.log" for i in range(workers)]
    sampler = ConnectionSampler(url) if url.startswith("postgresql") else nullcontext(None)
    with sampler as connections:
        start = time.perf_counter()
        procs = []
        for index, log_path in enumerate(logs):
            with log_path.open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "service", "worker", "--device", device,
                         "--name", f"scale-{workers}-{index}",
                         "--torch-threads", str(torch_threads), "--exit-when-idle"],
                        env=env, stdout=log, stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                    )
                )
        deadline = start + timeout_s
        try:
            codes = [p.wait(timeout=max(0.1, deadline - time.perf_counter())) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        wall = time.perf_counter() - start
    db = Database(url)
    try:
        rows = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
        trained_images = _trained_images(db, study.id)
    finally:
        db.dispose()
        close_storages()
    claimed = [t.claimed_at for t in rows if t.claimed_at is not None]
    finished = [t.finished_at for t in rows if t.finished_at is not None]
    active = (max(finished) - min(claimed)).total_seconds() if claimed and finished else 0.0
    peak_total = connections.peak_total if connections else 0
    peak_per_worker = max(connections.peak_per_process.values(), default=0) if connections else 0
    return ScaleRun(
        workers=workers,
        trials=trials,
        wall_s=wall,
        active_s=active,
        exit_codes=codes,
        peak_connections=peak_total,
        peak_per_worker=peak_per_worker,
        study_id=study.id,
        trained_images=trained_images,
        logs="\n".join(p.read_text(errors="replace") for p in logs),
    )
