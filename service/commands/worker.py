"""`sweepdoc worker`: claim trials from the database queue and train them, until stopped."""

from __future__ import annotations

import logging
import os
import threading
from typing import Annotated

import typer

from service.settings import get_settings
from studies.worker import WorkerOptions, run_worker

logger = logging.getLogger("sweepdoc.worker")

_PARENT_CHECK_S = 1.0


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    # A worker started by `serve` winds down when its server is gone (killed with -9, say)
    # instead of living on as an orphan; its trial goes back to the queue at the next epoch.
    while not stop.wait(_PARENT_CHECK_S):
        if os.getppid() != parent_pid:
            logger.warning("server %d is gone; stopping at the next epoch", parent_pid)
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
            str | None, typer.Option(help="Name shown in the API (default: host:pid).")
        ] = None,
        max_trials: Annotated[
            int | None, typer.Option(min=1, help="Exit after this many trials.")
        ] = None,
        exit_when_idle: Annotated[
            bool, typer.Option(help="Exit as soon as no trial is waiting or running.")
        ] = False,
        torch_threads: Annotated[
            int | None,
            typer.Option(min=1, help="CPU threads for training (default: torch's choice)."),
        ] = None,
        parent_pid: Annotated[int | None, typer.Option(hidden=True)] = None,
    ) -> None:
        """Run trials from the queue in the database (SWEEPDOC_DATABASE_URL) until stopped.

        Ctrl-C or SIGTERM stops the running trial at its next epoch and hands it back to the
        queue, where another worker picks it up.
        """
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        settings = get_settings()
        settings.make_dirs()
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
            torch_threads=torch_threads,
        )
        stop = threading.Event()  # run_worker sets it on SIGTERM / SIGINT
        if parent_pid is not None:
            threading.Thread(
                target=_watch_parent, args=(parent_pid, stop), name="parent-watch", daemon=True
            ).start()
        trials = run_worker(options, stop=stop)
        logger.info("worker stopped after %d trial(s)", trials)
