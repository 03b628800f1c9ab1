"""A private, throwaway PostgreSQL server for the test suite.

The tests need a *real* PostgreSQL (the queue's exactly-once claim and Optuna's RDB storage
behave differently there than on SQLite). `.ci/run` installs Debian's postgresql; this module
starts a server of our own in a temporary folder on a free loopback port, so tests never touch
a cluster the machine may already run. PostgreSQL refuses to run as root, so when the suite runs
as root the server runs as the `postgres` system user.

Set SWEEPDOC_TEST_POSTGRES_URL to use an existing server instead (a superuser URL).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import pytest


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def skip_unless_ci(missing: PostgresUnavailable, reason: str) -> NoReturn:
    """Skip a test that needs PostgreSQL on a machine without it, giving *reason*; in CI
    (CI=true) re-raise *missing* instead: the PostgreSQL tests are part of what CI must prove."""
    if os.environ.get("CI"):
        raise missing
    pytest.skip(reason)


def _find_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    raise PostgresUnavailable(
        "PostgreSQL server binaries not found; install Debian's `postgresql` package "
        "(.ci/run does) or set SWEEPDOC_TEST_POSTGRES_URL."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@contextmanager
def running_postgres() -> Iterator[str]:
    """Yield a superuser URL (``postgresql+psycopg://…/postgres``) of a fresh server."""
    existing = os.environ.get("SWEEPDOC_TEST_POSTGRES_URL")
    if existing:
        yield existing
        return
    bindir = _find_bindir()
    root = Path(tempfile.mkdtemp(prefix="sweepdoc-pg-"))
    datadir = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres", group="postgres")
    subprocess.run(
        _as_server_user(
            [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust",
             "--no-sync", "-E", "UTF8"]
        ),
        check=True,
        capture_output=True,
    )
    port = _free_port()
    # 200 connections: the scale tests run many worker processes, each with a small pool.
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
    )
    subprocess.run(
        _as_server_user(
            [str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-l", str(root / "log"),
             "-w", "-t", "60", "start"]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_server_user(
                [str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "immediate", "stop"]
            ),
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def create_database(server_url: str) -> str:
    """Create a fresh, uniquely named database on *server_url*; return its URL."""
    import psycopg

    name = f"sweepdoc_test_{uuid.uuid4().hex[:12]}"
    plain = server_url.replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + 30
    while True:
        try:
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    return server_url.rsplit("/", 1)[0] + f"/{name}"
