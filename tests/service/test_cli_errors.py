"""Bad command lines end with one clear message and a non-zero exit, never a traceback."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.serve_process import run_cli

UNREACHABLE_DB = "postgresql+psycopg://sweepdoc:hunter2@127.0.0.1:1/sweepdoc"


def sweepdoc(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, columns=200, SWEEPDOC_HOME=str(home), **env)


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def assert_clean_failure(run: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    output = run.stdout + run.stderr
    assert run.returncode == code, output
    assert "Traceback" not in output
    for word in words:
        assert word in output, output


def test_worker_refuses_an_unknown_device(tmp_path: Path) -> None:
    assert_clean_failure(sweepdoc(tmp_path, "worker", "--device", "gpu"), 2, "cuda:N", "'gpu'")


def test_worker_explains_an_unreachable_database(tmp_path: Path) -> None:
    run = sweepdoc(tmp_path, "worker", "--device", "cpu", SWEEPDOC_DATABASE_URL=UNREACHABLE_DB)

    assert_clean_failure(run, 1, "cannot open the database", "SWEEPDOC_DATABASE_URL")
    assert "hunter2" not in run.stdout + run.stderr


def test_serve_refuses_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    run = sweepdoc(tmp_path, "serve", "--port", str(busy_port), "--workers", "0")
    assert_clean_failure(run, 2, "already in use", "--port")


def test_serve_refuses_a_negative_worker_count(tmp_path: Path) -> None:
    assert_clean_failure(sweepdoc(tmp_path, "serve", "--workers", "-1"), 2, "'auto'")


def test_serve_explains_an_unreachable_database(tmp_path: Path) -> None:
    run = sweepdoc(tmp_path, "serve", "--workers", "0", SWEEPDOC_DATABASE_URL=UNREACHABLE_DB)

    assert_clean_failure(run, 2, "cannot open the database")
    assert "hunter2" not in run.stdout + run.stderr
