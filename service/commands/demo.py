"""`sweepdoc demo`: the main job end to end on the bundled digits dataset, on this machine.

Starts a server and one worker on a free local port (its own SQLite file under
SWEEPDOC_HOME), submits the default learning-rate grid, follows it, prints each learning
rate's label with its evidence and the study's next step, and the dashboard URL. The grid
asks for one automatic follow-up round (``follow_up.max_rounds: 1``, studies.chain): the
server reads the grid's curves and submits the next study itself; the demo follows that
round too and prints what changed in the spec and what it bought.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from service.client import SweepdocClient
from service.commands._chain import chain_table, epochs_spent, spec_changes, wait_for_decision
from service.render import fmt_lr, follow, print_study_report
from service.server import (
    BackgroundServer,
    ServeError,
    check_port,
    free_port,
    make_server,
    prepare_database,
    start_workers,
)
from service.settings import Settings, get_settings
from service.supervisor import LocalWorkers, WorkerPlan
from studies.db import StudyStatus
from studies.schemas import StudyPublic
from studies.spec import StudySpec, default_grid_spec_path, load_spec_file

logger = logging.getLogger("sweepdoc.demo")


# Automatic follow-up rounds after the grid: one shows the loop at twice the grid's time.
_ROUNDS = 1

# A worker that keeps dying (a broken install, say) would leave the demo waiting forever.
_MAX_WORKER_RESTARTS = 3


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop the demo cleanly."""


class _WorkerKeepsDying(Exception):
    """The demo's worker crashed repeatedly; its log says why."""


def demo_settings(settings: Settings) -> Settings:
    """The demo's own SQLite database under SWEEPDOC_HOME, so it never mixes with real work."""
    return settings.model_copy(update={"database_url": f"sqlite:///{settings.home / 'demo.db'}"})


def _cancel_leftovers(client: SweepdocClient, console: Console) -> None:
    # An interrupted earlier demo may have left a study queued; the one worker would run it
    # first. Its results stay readable; it just stops occupying the worker.
    for status in (StudyStatus.RUNNING, StudyStatus.QUEUED):
        for study in client.studies(status=status, limit=500).data:
            client.cancel(study.id)
            console.print(f"cancelled study {study.id} left unfinished by an earlier demo")


def _run_study(client: SweepdocClient, console: Console, workers: LocalWorkers) -> None:
    """Submit the default grid, follow it, then print the report and the links to its plots;
    then the automatic round after it."""
    grid = load_spec_file(default_grid_spec_path())
    spec = StudySpec.model_validate({**grid.model_dump(), "follow_up": {"max_rounds": _ROUNDS}})
    _cancel_leftovers(client, console)
    study = client.submit(spec)
    lrs = ", ".join(fmt_lr(p["lr"]) for p in spec.grid_points())
    console.print(
        f"submitted study {study.id} [bold]{study.name}[/]: {spec.dataset}, "
        f"{spec.model.arch} CNN, {spec.train.epochs} epochs, lr ∈ {{{lrs}}}",
        highlight=False,
    )

    def check_worker() -> None:
        if workers.restarts() > _MAX_WORKER_RESTARTS:
            raise _WorkerKeepsDying(f"the worker died {workers.restarts()} times")

    study = follow(client, study.id, console, on_poll=check_worker)
    print_study_report(client, study, console)
    trials = client.trials(study.id).data
    console.print("Curves plots (label in the title):", highlight=False)
    for trial in sorted(trials, key=lambda t: -(t.params.get("lr") or 0.0)):
        console.print(
            f"  lr {fmt_lr(trial.params.get('lr'))}: "
            f"{client.base_url}/v1/trials/{trial.id}/curves.png",
            highlight=False,
        )
    console.print(
        f"Learning-rate plot: {client.base_url}/v1/studies/{study.id}/lr.png\n"
        f"Dashboard: [bold]{client.dashboard_url(study)}[/]",
        highlight=False,
    )
    _run_follow_up(client, console, study, check_worker)


def _run_follow_up(
    client: SweepdocClient, console: Console, first: StudyPublic, check_worker: Callable[[], None]
) -> None:
    """The round the server submitted after the grid: what changed, its progress and
    report, and what it bought (best validation accuracy and epochs, before and after)."""
    first = wait_for_decision(client, first, on_poll=check_worker)
    console.rule("automatic follow-up round")
    console.print(f"[bold]The server decided:[/] {first.chain_reason}", highlight=False)
    if first.follow_up_id is None:
        return
    second = client.study(first.follow_up_id)
    console.print(f"[bold]What changed[/] (study {first.id} → study {second.id}):")
    for line in spec_changes(first.spec, second.spec):
        console.print(f"  {line}", highlight=False)
    second = follow(client, second.id, console, on_poll=check_worker)
    print_study_report(client, second, console)
    second = wait_for_decision(client, second, on_poll=check_worker)
    console.print("[bold]What it bought:[/]")
    for study in (first, second):
        best = study.best_trial
        console.print(
            f"  round {study.round} (study {study.id}): best {study.objective.value} "
            + ("-" if best is None else f"{best.value:.4f} at lr {fmt_lr(best.lr)}")
            + f", {epochs_spent(client, study.id)} epochs",
            highlight=False,
        )
    console.print(chain_table(client.study_chain(second.id)))


@dataclass
class _Started:
    """What the demo has started so far: whatever happens, `_shutdown` stops exactly that."""

    settings: Settings
    log_dir: Path
    console: Console
    server: BackgroundServer | None = None
    workers: LocalWorkers | None = None
    # The study ran to its end: a Ctrl-C after that (with --keep-serving) is the normal exit.
    finished: bool = False


def demo(
    keep_serving: Annotated[
        bool,
        typer.Option(help="Leave the server and dashboard running after the demo."),
    ] = False,
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default: a free one).")
    ] = None,
) -> None:
    """Run the default learning-rate grid on digits and print each run's diagnosis."""
    settings = demo_settings(get_settings())
    log_dir = settings.home / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    _log_to_file(log_dir / "demo.log")
    force = _interrupt_on_signals()
    started = _Started(settings, log_dir, Console())
    try:
        code = _run_demo(started, port=port, keep_serving=keep_serving)
    finally:
        try:
            _shutdown(started, force)
        except _Interrupted:
            force.set()
            _shutdown(started, force)
    if code:
        raise typer.Exit(code)


def _interrupt_on_signals() -> threading.Event:
    """Ctrl-C or SIGTERM raises `_Interrupted` (a clean stop); a second one sets the returned
    event, which kills the worker instead of waiting for its trial's next epoch."""
    force = threading.Event()
    interrupts: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        interrupts.append(signum)
        if len(interrupts) == 1:
            raise _Interrupted
        force.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return force


def _run_demo(started: _Started, *, port: int | None, keep_serving: bool) -> int:
    """Serve, run the study, report; the exit code. A failure is told in a line or two (the
    demo never shows a traceback: the log file has it)."""
    console, log_dir = started.console, started.log_dir
    try:
        _serve_and_run(started, port=port, keep_serving=keep_serving)
    except _Interrupted:
        if started.finished:
            console.print("\nstopping the server")
            return 0
        console.print("\ninterrupted; stopping the demo")
        return 130
    except ServeError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    except _WorkerKeepsDying as exc:
        console.print(f"[red]error:[/] {exc}; see {log_dir / 'demo-worker.log'}", highlight=False)
        return 1
    except Exception as exc:
        logger.exception("demo failed")
        console.print(
            f"[red]error:[/] the demo failed: {exc}\n"
            f"details in {log_dir / 'demo.log'} and {log_dir / 'demo-worker.log'}",
            highlight=False,
        )
        return 1
    return 0


def _serve_and_run(started: _Started, *, port: int | None, keep_serving: bool) -> None:
    """Start the server and one worker on a local port, run the study, then stop (or serve
    until interrupted, with *keep_serving*)."""
    settings, console, log_dir = started.settings, started.console, started.log_dir
    host = "127.0.0.1"
    chosen_port = port or free_port(host)
    base = f"http://{host}:{chosen_port}"
    console.print(
        f"sweepdoc demo: server and 1 worker on {base} "
        f"(database {settings.home / 'demo.db'}, logs in {log_dir})",
        highlight=False,
    )
    check_port(host, chosen_port)
    prepare_database(settings)
    started.workers = start_workers(
        settings, [WorkerPlan(name="demo-worker", device="auto")], log_dir=log_dir
    )
    started.server = BackgroundServer(
        make_server(settings, host, chosen_port, log_level="info", own_logging=False)
    )
    started.server.start()
    token = settings.api_token.get_secret_value() if settings.api_token else None
    with SweepdocClient(base, timeout_s=settings.request_timeout_s, token=token) as client:
        client.wait_until_up(30)
        _run_study(client, console, started.workers)
        started.finished = True
        if not keep_serving:
            console.print(
                "The demo server stops now; `sweepdoc demo --keep-serving` keeps these "
                "links and the dashboard open.",
                style="dim",
                highlight=False,
            )
            return
        console.print(f"serving on {base} until Ctrl-C …", highlight=False)
        while True:
            time.sleep(3600)


def _shutdown(started: _Started, force: threading.Event) -> None:
    if started.server is not None:
        started.server.stop()
    if started.workers is not None:
        started.workers.stop(started.settings.shutdown_grace_s, force=force)


def _log_to_file(path: Path) -> None:
    # Server logs would tear the progress bars apart: they go to the demo's log file.
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # Optuna writes to stderr through a handler of its own; send its lines to the file too.
    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
