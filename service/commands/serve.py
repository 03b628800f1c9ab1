"""`sweepdoc serve`: the HTTP API, the Optuna dashboard and local workers, in one command."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console

from service.server import ServeError, check_port, make_server, prepare_database, start_workers
from service.settings import Settings, get_settings, redact_url
from service.supervisor import WorkerPlan, detect_devices, plan_workers

logger = logging.getLogger("sweepdoc.serve")


def parse_worker_count(value: str) -> int | None:
    """`auto` → None (one per visible GPU, else one per CPU core up to 4); otherwise a
    count ≥ 0."""
    if value == "auto":
        return None
    try:
        count = int(value)
    except ValueError:
        raise typer.BadParameter(f"expected a number ≥ 0 or 'auto', got {value!r}") from None
    if count < 0:
        raise typer.BadParameter(f"expected a number ≥ 0 or 'auto', got {count}")
    return count


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[
        str,
        typer.Option(
            help="Local workers to start: a number, 0 for the API only, or 'auto' "
            "(one per visible CUDA GPU, else one per CPU core, at most 4).",
        ),
    ] = "auto",
    workers_per_gpu: Annotated[
        int,
        typer.Option(
            min=1,
            help="With --workers auto: workers on each visible GPU (a small CNN leaves a "
            "GPU mostly idle; 2-4 workers keep it busy).",
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Listen on a non-loopback --host without SWEEPDOC_API_TOKEN (anyone who "
            "reaches the port can submit studies and delete them in the dashboard).",
        ),
    ] = False,
) -> None:
    """Serve the API, the Optuna dashboard and local workers on one port.

    The API is under /v1 (docs at /docs), the dashboard at /dashboard. Ctrl-C or SIGTERM
    stops everything cleanly: running trials go back to the queue at their next epoch.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    console = Console(stderr=True)
    count = parse_worker_count(workers)
    if count is not None and workers_per_gpu != 1:
        raise typer.BadParameter(
            "applies to --workers auto only; a count is spread over the GPUs as it is",
            param_hint="--workers-per-gpu",
        )
    settings = get_settings()
    exposure = check_exposure(host, has_token=settings.api_token is not None)
    if exposure is not None and not insecure:
        console.print(f"[red]error:[/] {exposure}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if exposure is not None:
        console.print(f"[yellow]warning:[/] --insecure: {host} is served without a token")
    try:
        check_port(host, port)
        prepare_database(settings)
    except ServeError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None

    # The names clients reach this address by are allowed as `Host`, besides loopback and
    # SWEEPDOC_ALLOWED_HOSTS (DNS-rebinding defence, service/api/hosts.py).
    settings = settings.model_copy(
        update={"allowed_hosts": [*settings.allowed_hosts, *server_names(host)]}
    )
    force = _force_on_second_signal()
    plans = plan_workers(
        count,
        detect_devices() if count != 0 else [],
        prefix=f"{socket.gethostname()}-local",
        per_gpu=workers_per_gpu,
    )
    local = start_workers(settings, plans)
    _print_banner(console, settings, f"http://{host}:{port}", plans)
    try:
        make_server(settings, host, port, log_level=log_level).run()
    finally:
        if local.plans:
            console.print(
                f"stopping {len(local.plans)} local worker(s): running trials stop at their "
                f"next epoch (up to {settings.shutdown_grace_s:.0f} s; Ctrl-C again to kill)"
            )
        local.stop(settings.shutdown_grace_s, force=force)
    console.print("sweepdoc stopped")


def _force_on_second_signal() -> threading.Event:
    """The event a second SIGTERM/SIGINT sets: the workers are then killed, not waited for.

    uvicorn replaces this handler while it serves and calls it again on exit; a signal
    arriving while the workers are stopping kills them at once.
    """
    stop_requests: list[int] = []
    force = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop_requests.append(signum)
        if len(stop_requests) > 1:
            force.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return force


def _print_banner(
    console: Console, settings: Settings, base: str, plans: Sequence[WorkerPlan]
) -> None:
    """Where everything is served, which workers run where, and what needs the token."""
    described = ", ".join(f"{p.name} on {p.device}" for p in plans) or "none (API only)"
    console.print(
        f"sweepdoc serving on {base}  (API {base}/v1, docs {base}/docs, "
        f"dashboard {base}/dashboard)\nlocal workers: {described}\n"
        f"database: {redact_url(settings.resolved_database_url)}"
    )
    if settings.api_token is not None:
        reads = "open" if settings.public_reads else "need it too"
        console.print(
            f"token required for /v1 writes and the dashboard (/v1 reads {reads}); "
            f"browsers log in at {base}/login",
            highlight=False,
        )


def is_loopback(host: str) -> bool:
    """Whether *host* is a loopback address (or `localhost`); a name is not trusted to be."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, *, has_token: bool) -> str | None:
    """Why listening on *host* is unsafe (a non-loopback address without a token), or None."""
    if has_token or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} without a token: set SWEEPDOC_API_TOKEN (e.g. export "
        "SWEEPDOC_API_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')), "
        "or pass --insecure to serve it open anyway."
    )


# Addresses that mean "every interface": the machine's names are what clients will use.
_WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})


def server_names(bind_host: str) -> list[str]:
    """The names clients use for a server listening on *bind_host*.

    A specific address or name is its own; a wildcard (`0.0.0.0`, `::`) adds this machine's
    host name, its fully qualified name and the addresses that name resolves to (any other
    name, such as a DNS alias, goes in `SWEEPDOC_ALLOWED_HOSTS`).
    """
    bind = bind_host.strip("[]").lower()
    if bind not in _WILDCARD_BINDS:
        return [bind]
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:  # a machine whose own name does not resolve: its names still count
        infos = []
    names.update(str(info[4][0]) for info in infos)
    return sorted(name.lower() for name in names if name)
