"""`sweepdoc demo`: the main job end to end on the bundled digits dataset, on this machine.

Starts a server and one worker on a free local port (its own SQLite file under
SWEEPDOC_HOME), submits the default learning-rate grid, follows it, prints each learning
rate's label with its evidence and the study's next step, and the dashboard URL.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from service.client import SweepdocClient
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
from studies.spec import default_grid_spec_path, load_spec_file

logger = logging.getLogger("sweepdoc.demo")


# A worker that keeps dying (a broken install, say) would leave the demo waiting forever.
_MAX_WORKER_RESTARTS = 3


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop the demo cleanly."""


class _WorkerKeepsDying(Exception):
    """The demo's worker crashed repeatedly; its log says why."""


def demo_settings(settings: Settings) -> Settings:
    """The demo's own SQLite database under SWEEPDOC_HOME, so it never mixes with real work."""
    return settings.model_copy(
        update={"database_url": f"sqlite:///{settings.home / 'demo.db'}"}
    )


def _cancel_leftovers(client: SweepdocClient, console: Console) -> None:
    # An interrupted earlier demo may have left a study queued; the one worker would run it
    # first. Its results stay readable; it just stops occupying the worker.
    for status in (StudyStatus.RUNNING, StudyStatus.QUEUED):
        for study in client.studies(status=status, limit=500).data:
            client.cancel(study.id)
            console.print(f"cancelled study {study.id} left unfinished by an earlier demo")


def _run(client: SweepdocClient, console: Console, workers: LocalWorkers) -> None:
    spec = load_spec_file(default_grid_spec_path())
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


def register(app: typer.Typer) -> None:
    """Add the `demo` command to *app*."""

    @app.command()
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
        console = Console()
        settings = demo_settings(get_settings())
        log_dir = settings.home / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        _log_to_file(log_dir / "demo.log")

        force = threading.Event()
        interrupts: list[int] = []

        def on_signal(signum: int, frame: FrameType | None) -> None:
            interrupts.append(signum)
            if len(interrupts) == 1:
                raise _Interrupted
            force.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

        host = "127.0.0.1"
        server: BackgroundServer | None = None
        workers: LocalWorkers | None = None
        code = 0
        finished = False
        try:
            chosen_port = port or free_port(host)
            base = f"http://{host}:{chosen_port}"
            console.print(
                f"sweepdoc demo: server and 1 worker on {base} "
                f"(database {settings.home / 'demo.db'}, logs in {log_dir})",
                highlight=False,
            )
            check_port(host, chosen_port)
            prepare_database(settings)
            workers = start_workers(
                settings, [WorkerPlan(name="demo-worker", device="auto")], log_dir=log_dir
            )
            server = BackgroundServer(
                make_server(settings, host, chosen_port, log_level="info", own_logging=False)
            )
            server.start()
            token = settings.api_token.get_secret_value() if settings.api_token else None
            with SweepdocClient(
                base, timeout_s=settings.request_timeout_s, token=token
            ) as client:
                client.wait_until_up(30)
                _run(client, console, workers)
                finished = True
                if not keep_serving:
                    console.print(
                        "The demo server stops now; `sweepdoc demo --keep-serving` keeps these "
                        "links and the dashboard open.",
                        style="dim",
                        highlight=False,
                    )
                else:
                    console.print(f"serving on {base} until Ctrl-C …", highlight=False)
                    while True:
                        time.sleep(3600)
        except _Interrupted:
            if finished:  # --keep-serving ends with Ctrl-C: that is the normal way out
                console.print("\nstopping the server")
            else:
                console.print("\ninterrupted; stopping the demo")
                code = 130
        except ServeError as exc:
            console.print(f"[red]error:[/] {exc}", highlight=False)
            code = 2
        except _WorkerKeepsDying as exc:
            console.print(
                f"[red]error:[/] {exc}; see {log_dir / 'demo-worker.log'}", highlight=False
            )
            code = 1
        except Exception as exc:  # the demo never shows a traceback; the log file has it
            logger.exception("demo failed")
            console.print(
                f"[red]error:[/] the demo failed: {exc}\n"
                f"details in {log_dir / 'demo.log'} and {log_dir / 'demo-worker.log'}",
                highlight=False,
            )
            code = 1
        finally:
            try:
                _shutdown(server, workers, settings, force, console)
            except _Interrupted:
                force.set()
                _shutdown(server, workers, settings, force, console)
        if code:
            raise typer.Exit(code)


def _shutdown(
    server: BackgroundServer | None,
    workers: LocalWorkers | None,
    settings: Settings,
    force: threading.Event,
    console: Console,
) -> None:
    if server is not None:
        server.stop()
    if workers is not None:
        workers.stop(settings.shutdown_grace_s, force=force)


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
