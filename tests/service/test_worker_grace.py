"""`sweepdoc worker` honours SWEEPDOC_SHUTDOWN_GRACE_S as `serve` does for its own workers:
after SIGTERM it waits for the running epoch at most that long; an epoch that outlasts it
is not waited for: the trial goes back to the queue at once (no retry spent, the attempt
in its history with the reason) and the worker exits with status 3."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from service.commands.worker import EXIT_GRACE_EXPIRED, enforce_grace
from studies import store
from studies.db import Database, TrialState
from studies.schema_setup import create_schema
from studies.spec import parse_spec
from tests.service.serve_process import REPO
from tests.studies.conftest import tiny_spec
from tests.waiting import wait_until

# Epochs of minutes on one CPU thread (a wide network, small batches): far past a 1 s grace.
SLOW_EPOCHS = tiny_spec(
    name="slow",
    data={"train_subset": 1000},
    model={"arch": "resnet", "width": 256, "stages": 2},
    train={"epochs": 3, "batch_size": 8},
    search={"sampler": "grid", "grid": [0.01]},
)


def test_an_epoch_longer_than_the_grace_is_not_waited_for(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sweepdoc.db'}"
    db = Database(url)
    create_schema(db)
    study = store.submit_study(db, parse_spec(SLOW_EPOCHS), artifacts_dir=tmp_path / "artifacts")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPDOC_")}
    env.update(
        SWEEPDOC_HOME=str(tmp_path),
        SWEEPDOC_DATABASE_URL=url,
        SWEEPDOC_SHUTDOWN_GRACE_S="1",
        SWEEPDOC_WORKER_POLL_INTERVAL_S="0.2",
    )
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "service",
                "worker",
                "--name",
                "graceful",
                "--torch-threads",
                "1",
                "--device",
                "cpu",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        log_path = tmp_path / "worker.log"
        wait_until(
            lambda: "trial 1 (study" in log_path.read_text(), "the trial to start", timeout_s=180
        )
        # Training has begun once the worker burns CPU after the trial's start (a signal
        # before the first epoch hands the trial back at once, with nothing to wait for).
        started = cpu_seconds(worker.pid)
        wait_until(lambda: cpu_seconds(worker.pid) > started + 2, "training", timeout_s=120)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=120)  # a hang guard: the epoch itself takes minutes
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = (tmp_path / "worker.log").read_text(errors="replace")
    assert code == EXIT_GRACE_EXPIRED, output
    assert "did not stop within SWEEPDOC_SHUTDOWN_GRACE_S (1 s)" in output
    (slot,) = store.list_trials(db, study.id).data
    assert slot.state == TrialState.WAITING and slot.epochs_done == 0
    detail = store.get_trial(db, slot.id)
    assert detail.attempt == 0  # handed back, not reaped: no retry spent
    (attempt,) = detail.attempts
    assert "released: the worker did not stop within" in (attempt.error or "")
    db.dispose()


def cpu_seconds(pid: int) -> float:
    """The CPU time process *pid* has used (Linux /proc: utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_worker_that_stops_in_time_is_left_alone() -> None:
    stop, done, expired = threading.Event(), threading.Event(), threading.Event()
    watcher = threading.Thread(target=enforce_grace, args=(stop, done, 60.0, expired.set))
    watcher.start()
    stop.set()
    done.set()
    watcher.join(timeout=30)
    assert not watcher.is_alive() and not expired.is_set()
