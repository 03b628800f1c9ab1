"""A PostgreSQL server of one test's own, which the test may stop and start again.

The session's shared server (``postgres_server``) must stay up for every other test; an
outage test gets this one instead. Started like the shared one (tests/postgres_server.py):
a fresh cluster in a temporary folder on a free loopback port, run as the ``postgres`` user
when the suite runs as root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.postgres_server import _as_server_user, _find_bindir, _free_port


class PostgresServer:
    """One throwaway cluster: ``stop()`` and ``start()`` keep its port, data and URL."""

    def __init__(self) -> None:
        self.bindir = _find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="sweepdoc-pg-fault-"))
        self.datadir = self.root / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_server_user([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args]),
            check=True,
            capture_output=True,
            timeout=90,
        )

    def init(self) -> None:
        if os.geteuid() == 0:  # the server runs as `postgres` and must own its folder
            shutil.chown(self.root, user="postgres", group="postgres")
        subprocess.run(
            _as_server_user(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.root / "log"), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server now: open connections are cut, as when a database host goes away."""
        self._pg_ctl("-m", "fast", "-w", "-t", "60", "stop")

    def destroy(self) -> None:
        subprocess.run(
            _as_server_user(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def stoppable_postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()
