"""Run the HTTP server and its local workers together, and stop them together.

Shared by `sweepdoc serve` (server in the foreground until a signal) and `sweepdoc demo`
(server in a background thread while the demo drives it).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time
from pathlib import Path

import uvicorn

from service.settings import Settings, env_name
from service.supervisor import LocalWorkers, WorkerPlan
from studies.db import Database, configure_pool
from studies.schema_setup import create_schema

logger = logging.getLogger(__name__)


class ServeError(Exception):
    """The server cannot start (port taken, database unreachable); the message says why."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port(host: str, port: int) -> None:
    """Fail early, before any worker starts, when *host*:*port* cannot be bound."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ServeError(
                    f"port {port} on {host} is already in use; pick another with --port"
                ) from exc
            raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def prepare_database(settings: Settings) -> None:
    """Create the schema once, before the workers start, with an error a person can act on."""
    settings.make_dirs()
    # This process serves the API and the dashboard: its pool, before any engine exists.
    configure_pool(
        settings.resolved_database_url, settings.db_pool("api", size=settings.api_db_pool_size)
    )
    database = Database(settings.resolved_database_url)
    try:
        create_schema(database)
    except Exception as exc:  # driver errors vary; all mean the same thing to the user here
        raise ServeError(
            f"cannot open the database ({type(exc).__name__}: {str(exc).splitlines()[0]}). "
            "Check SWEEPDOC_DATABASE_URL and that the database server is running."
        ) from exc
    finally:
        database.dispose()


# The settings a local worker must read as this server does, passed to it explicitly: the
# server's settings need not be the environment both inherit (the demo picks its own database
# in code, tests build Settings by hand).
WORKER_SETTINGS = (
    "home",
    "database_url",
    "data_dir",
    "worker_poll_interval_s",
    "worker_heartbeat_interval_s",
    "worker_stale_after_s",
    # The limits a follow-up round the worker submits must fit (studies.chain).
    "max_trials_per_study",
    "max_epochs",
    "max_queued_studies",
)


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of local workers: this server's database and folders, explicitly."""
    # The database and data folder as this server resolved them (not unset: "the default").
    resolved = settings.model_copy(
        update={
            "database_url": settings.resolved_database_url,
            "data_dir": settings.resolved_data_dir,
        }
    )
    return {
        **os.environ,
        **{env_name(name): str(getattr(resolved, name)) for name in WORKER_SETTINGS},
    }


def start_workers(
    settings: Settings, plans: list[WorkerPlan], *, log_dir: Path | None = None
) -> LocalWorkers:
    # The pid files let a restarted server adopt the workers of one that was killed.
    workers = LocalWorkers(
        plans, env=worker_env(settings), log_dir=log_dir, pid_dir=settings.home / "workers"
    )
    workers.start()
    return workers


def make_server(
    settings: Settings, host: str, port: int, *, log_level: str, own_logging: bool = True
) -> uvicorn.Server:
    """A uvicorn server for the app; *own_logging* False leaves logging to the caller's setup."""
    # Deferred: the web stack (FastAPI, the dashboard) loads only for commands that serve.
    from service.api import create_app

    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        log_config=uvicorn.config.LOGGING_CONFIG if own_logging else None,
        # Several in-flight requests each hold a database session; keep-alive timeouts short so
        # a stopped client does not hold the shutdown.
        timeout_keep_alive=5,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """A uvicorn server in a daemon thread (signals stay with the main thread)."""

    def __init__(self, server: uvicorn.Server) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.run, name="sweepdoc-http", daemon=True)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start serving; return once the server listens."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive():
                raise ServeError("the HTTP server stopped while starting; see its log")
            if time.monotonic() > deadline:
                raise ServeError(f"the HTTP server did not start within {timeout_s:.0f} s")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
