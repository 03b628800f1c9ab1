"""`sweepdoc worker`: claim trials from the database queue and train them, until stopped."""

from __future__ import annotations

import logging
import os
import signal
import threading
from types import FrameType
from typing import Annotated

import typer
from studies.worker import WorkerOptions, run_worker

from service.settings import get_settings

logger = logging.getLogger("sweepdoc.worker")

_PARENT_CHECK_S = 1.0


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    # A worker started by `serve` winds down when its server is gone (killed with -9, say),
    # instead of living on as an orphan; the trial it is training is recorded first.
    while not stop.wait(_PARENT_CHECK_S):
        if os.getppid() != parent_pid:
            logger.warning("server %d is gone; stopping after the current trial", parent_pid)
            stop.set()


def register(app: typer.Typer) -> None:
    """Add the `worker` command to *app*."""

    @app.command()
    def worker(
        device: Annotated[
            str,
            typer.Option(help="Where to train: auto (a GPU if any), cpu, cuda or cuda:N."),
        ] = "auto",
        name: Annotated[
            str | None, typer.Option(help="Name shown in the API (default: host-pid).")
        ] = None,
        max_trials: Annotated[
            int | None, typer.Option(min=1, help="Exit after this many trials.")
        ] = None,
        exit_when_idle: Annotated[
            bool, typer.Option(help="Exit as soon as the queue is empty.")
        ] = False,
        parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
    ) -> None:
        """Run trials from the queue in the database (SWEEPDOC_DATABASE_URL) until stopped.

        Ctrl-C or SIGTERM stops the running trial at its next epoch and records it; a second
        signal exits at once (the heartbeat reaper then re-queues the trial).
        """
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        settings = get_settings()
        options = WorkerOptions(
            database_url=settings.resolved_database_url,
            device=device,
            data_dir=settings.resolved_data_dir,
            artifacts_dir=settings.artifacts_dir,
            name=name,
            poll_interval_s=settings.worker_poll_interval_s,
            heartbeat_interval_s=settings.worker_heartbeat_interval_s,
            stale_after_s=settings.worker_stale_after_s,
            max_trials=max_trials,
            exit_when_idle=exit_when_idle,
        )
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            if stop.is_set():
                raise SystemExit(128 + signum)
            logger.info("%s received; stopping at the next epoch", signal.Signals(signum).name)
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        if parent_pid is not None:
            threading.Thread(
                target=_watch_parent, args=(parent_pid, stop), name="parent-watch", daemon=True
            ).start()
        trials = run_worker(options, stop=stop)
        logger.info("worker stopped after %d trial(s)", trials)
