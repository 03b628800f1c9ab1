"""Bad command lines end with one clear message and a non-zero exit, never a traceback; and
the command names themselves, which docs/design.md makes a public contract."""

from __future__ import annotations

import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

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


# docs/design.md, "Public contract": the commands, in the order `--help` lists them.
PUBLIC_COMMANDS = [
    "demo", "serve", "worker", "submit", "status", "cancel", "delete", "export", "diagnose",
    "train", "lr-find", "migrate",
]
EXAMPLE_SPEC = Path(__file__).resolve().parents[2] / "studies" / "examples" / "digits-lr-grid.yaml"


def test_help_lists_exactly_the_public_commands_in_order(tmp_path: Path) -> None:
    run = sweepdoc(tmp_path, "--help")
    assert run.returncode == 0, run.stderr
    commands_panel = run.stdout.split("Commands")[1]
    # Rich draws each command as "│ name   its help…".
    listed = re.findall(r"^│ (\S+)\s{2,}\S", commands_panel, flags=re.MULTILINE)
    assert listed == PUBLIC_COMMANDS, run.stdout


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


def test_demo_refuses_a_port_in_use(tmp_path: Path, busy_port: int) -> None:
    # Fails before any worker or server starts: the demo still stops cleanly, exit 2.
    run = sweepdoc(tmp_path, "demo", "--port", str(busy_port))
    assert_clean_failure(run, 2, "already in use", "--port")


def test_submit_names_each_invalid_field_of_the_spec(tmp_path: Path) -> None:
    spec = yaml.safe_load(EXAMPLE_SPEC.read_text())
    spec["train"]["epochs"] = 0
    spec["model"]["colour"] = "blue"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    # Refused before any request: no server runs at the default URL.
    run = sweepdoc(tmp_path, "submit", str(path))
    assert_clean_failure(run, 2, "invalid study spec", "train.epochs", "model.colour")


@pytest.mark.parametrize("command", [["status"], ["status", "3"], ["submit", str(EXAMPLE_SPEC)]])
def test_server_commands_explain_an_unreachable_server(tmp_path: Path, command: list[str]) -> None:
    # A listening socket that never answers HTTP would hang; a closed port refuses at once.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{closed}"
    run = sweepdoc(tmp_path, *command, "--url", url)
    assert_clean_failure(run, 1, f"cannot reach a sweepdoc server at {url}", "sweepdoc serve")
