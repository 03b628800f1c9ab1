"""`sweepdoc worker`: claim trials from the database queue and train them, until stopped."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from service.settings import get_settings
from studies import optuna_bridge, queue
from studies.db import Database, TrialRow, TrialState, configure_pool
from studies.worker import WorkerOptions, run_worker
from trainer import check_device as check_device_name

logger = logging.getLogger("sweepdoc.worker")

_PARENT_CHECK_S = 1.0
# The exit status of a worker that did not stop within SWEEPDOC_SHUTDOWN_GRACE_S.
EXIT_GRACE_EXPIRED = 3


def _watch_parent(parent_pid: int, stop: threading.Event, drain: threading.Event) -> None:
    # A worker started by `serve` outlives its server (killed with -9, say): it finishes the
    # trial it is training, stores the result, and exits without claiming another. A
    # restarted `serve` adopts it (its pid file) and starts that slot's new worker only
    # once it has gone, so nothing is trained twice and no result is lost.
    while not stop.wait(_PARENT_CHECK_S):
        if os.getppid() != parent_pid:
            logger.warning(
                "server %d is gone; finishing the current trial, then exiting", parent_pid
            )
            drain.set()
            return


def hand_back_held_slots(database_url: str, worker: str, *, reason: str) -> list[int]:
    """Hand every slot *worker* still runs back to the queue (no retry spent), and fail
    their Optuna trials, as a stop at the next epoch would; the slots' ids."""
    db = Database(database_url)
    try:
        with db.session() as session:
            held = session.execute(
                select(TrialRow.id, TrialRow.optuna_trial_id).where(
                    TrialRow.worker == worker, TrialRow.state == TrialState.RUNNING
                )
            ).all()
        released = []
        for trial_id, optuna_trial_id in held:
            if queue.release(db, queue.load_claim(db, trial_id, worker), reason=reason):
                optuna_bridge.fail_trial(db.url, optuna_trial_id)
                released.append(trial_id)
        return released
    finally:
        db.dispose()


def enforce_grace(
    stop: threading.Event, done: threading.Event, grace_s: float, on_expiry: Callable[[], None]
) -> None:
    """Once *stop* is set, give the worker *grace_s* to finish (*done*); past it, call
    *on_expiry*. What `serve` does to its local workers (SWEEPDOC_SHUTDOWN_GRACE_S), for a
    worker on its own: a Kubernetes pod, a systemd unit, a second machine."""
    stop.wait()
    if not done.wait(grace_s):
        on_expiry()


def _give_up(options: WorkerOptions, grace_s: float) -> None:
    # The running epoch would outlast the grace (the kubelet's or the operator's SIGKILL
    # would follow): hand the trial back now, so another worker resumes it at once from its
    # last epoch instead of after a heartbeat timeout and with a retry spent.
    reason = f"the worker did not stop within SWEEPDOC_SHUTDOWN_GRACE_S ({grace_s:g} s)"
    try:
        released = hand_back_held_slots(options.database_url, options.worker_name, reason=reason)
    except Exception:
        logger.exception("handing the running trial back failed; the reaper will")
        released = []
    logger.warning("%s: handed back trial(s) %s and exiting", reason, released)
    logging.shutdown()
    os._exit(EXIT_GRACE_EXPIRED)  # the training thread cannot be interrupted mid-epoch


def check_device(device: str) -> None:
    """Refuse a CUDA device this machine does not have, before any trial is claimed (a worker
    on a missing GPU would otherwise fail every trial it takes)."""
    try:
        check_device_name(device)  # the trainer's one device check
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--device") from None
    if not device.startswith("cuda"):
        return
    import torch  # deferred: only CUDA workers pay for the check here

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(device.partition(":")[2] or 0)
    if index >= count:
        raise typer.BadParameter(
            f"no CUDA device {device} on this machine ({count} visible); "
            "use --device cpu, auto, or cuda:0 … cuda:N-1",
            param_hint="--device",
        )


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
    queue, where another worker picks it up; an epoch that outlasts
    SWEEPDOC_SHUTDOWN_GRACE_S is not waited for: the trial is handed back at once and the
    worker exits with status 3.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    check_device(device)
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
        max_pack=settings.worker_max_pack,
        max_artifact_bytes=settings.max_artifact_bytes,
        spec_limits=settings.spec_limits,  # a follow-up round must fit the server's limits
        max_queued_studies=settings.max_queued_studies,
    )
    configure_pool(
        settings.resolved_database_url,
        settings.db_pool(f"worker {options.worker_name}", size=settings.worker_db_pool_size),
    )
    stop = threading.Event()  # run_worker sets it on SIGTERM / SIGINT
    drain = threading.Event()  # set when the server that started us is gone
    if parent_pid is not None:
        threading.Thread(
            target=_watch_parent,
            args=(parent_pid, stop, drain),
            name="parent-watch",
            daemon=True,
        ).start()
    done = threading.Event()  # run_worker returned: the grace is no longer needed
    grace_s = settings.shutdown_grace_s
    threading.Thread(
        target=enforce_grace,
        args=(stop, done, grace_s, lambda: _give_up(options, grace_s)),
        name="shutdown-grace",
        daemon=True,
    ).start()
    try:
        trials = run_worker(options, stop=stop, drain=drain)
    except OperationalError as exc:  # unreachable at start; later outages are retried
        Console(stderr=True).print(
            f"[red]error:[/] cannot open the database ({str(exc.orig).splitlines()[0]}). "
            "Check SWEEPDOC_DATABASE_URL and that the database server is running.",
            highlight=False,
        )
        raise typer.Exit(1) from None
    finally:
        done.set()
    logger.info("worker stopped after %d trial(s)", trials)
