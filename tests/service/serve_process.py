"""`sweepdoc serve` as a real subprocess for end-to-end tests: start, wait, stop, inspect."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]

# Fast heartbeats so a killed worker's trial is reaped within seconds, not half a minute.
FAST_WORKER_ENV = {
    "SWEEPDOC_WORKER_POLL_INTERVAL_S": "0.2",
    "SWEEPDOC_WORKER_HEARTBEAT_INTERVAL_S": "0.5",
    "SWEEPDOC_WORKER_STALE_AFTER_S": "4",
    "SWEEPDOC_SHUTDOWN_GRACE_S": "60",
}


def run_cli(
    *args: str, timeout_s: float = 120, columns: int = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run the real `sweepdoc` CLI as a user would: none of the test process's SWEEPDOC_*
    variables, only those in *env*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPDOC_")}
    clean.update(COLUMNS=str(columns), **env)
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes once reaped by its parent.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_pids(pid: int) -> set[int]:
    """The live child processes of *pid* (Linux /proc)."""
    children: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return {c for c in children if pid_alive(c)}


class ServeProcess:
    """One `python -m service serve` with its own state folder, database and log file."""

    def __init__(
        self,
        home: Path,
        *,
        database_url: str,
        workers: int,
        env_overrides: dict[str, str] | None = None,
        fast_workers: bool = True,
    ) -> None:
        """*fast_workers* False: the worker settings users get (service/settings.py defaults)
        instead of FAST_WORKER_ENV, as benchmarks of what users see need."""
        self.home = home
        self.fast_workers = fast_workers
        self.env_overrides = dict(env_overrides or {})
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / "serve.log"
        self.workers = workers
        self.process: subprocess.Popen[bytes] | None = None
        self.worker_pids: set[int] = set()  # every worker pid seen, for the orphan check
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPDOC_")}
        if self.fast_workers:
            env.update(FAST_WORKER_ENV)
        env["SWEEPDOC_HOME"] = str(self.home)
        env["SWEEPDOC_DATABASE_URL"] = self.database_url
        env.update(self.env_overrides)
        return env

    def start(self, timeout_s: float = 120.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        command = [sys.executable, "-m", "service", "serve", "--port", str(self.port)]
        command += ["--workers", str(self.workers), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log()}")
            try:
                if self.http.get("/healthz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve did not answer within {timeout_s} s:\n{self.log()}")

    def kill_9(self) -> None:
        """kill -9 of the server alone: its workers get no signal."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def restart(self, timeout_s: float = 120.0) -> None:
        """Start `serve` again on the same port, state folder and database."""
        assert self.process is not None and self.process.poll() is not None
        self.http.close()
        self.http = httpx.Client(base_url=self.url, timeout=30)
        self.start(timeout_s)

    def local_workers(self, count: int, timeout_s: float = 120.0) -> set[int]:
        """The pids of the server's worker processes, once *count* of them are alive."""
        assert self.process is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            pids = child_pids(self.process.pid)
            if len(pids) >= count:
                self.worker_pids.update(pids)
                return pids
            time.sleep(0.2)
        raise AssertionError(f"fewer than {count} worker processes:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, **kwargs: Any) -> Any:
        response = self.http.get(path, **kwargs)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()

    def wait_for_workers(self, count: int, timeout_s: float = 120.0) -> list[dict[str, Any]]:
        """The worker rows once *count* workers have announced themselves."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            workers = self.http.get("/readyz").json().get("workers", [])
            if len(workers) >= count:
                return list(workers)
            time.sleep(0.5)
        raise AssertionError(f"fewer than {count} workers after {timeout_s} s:\n{self.log()}")

    def wait_for_study(
        self, study_id: int, timeout_s: float = 300.0, poll_s: float = 0.5
    ) -> dict[str, Any]:
        """The study once it has ended; *poll_s* apart (benchmarks poll slowly, so that the
        polling itself takes no CPU from the training it measures)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            study: dict[str, Any] = self.get(f"/v1/studies/{study_id}")
            if study["status"] in ("completed", "failed", "cancelled"):
                return study
            time.sleep(poll_s)
        raise AssertionError(f"study {study_id} unfinished after {timeout_s} s:\n{self.log()}")

    def stop(self, timeout_s: float = 90.0) -> int:
        """SIGTERM, as a service manager would; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        finally:
            self.http.close()

    def kill(self) -> None:
        """Last-resort cleanup (the server and, through its process group, nothing else)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.http.close()


@contextmanager
def serving(process: ServeProcess, *, workers: int) -> Iterator[ServeProcess]:
    """Start *process* and wait for its *workers* local workers; on exit kill the server and
    any worker still alive (only left behind when a test failed before a clean stop)."""
    process.start()
    try:
        process.local_workers(workers)
        yield process
    finally:
        process.kill()
        for pid in process.worker_pids:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)


@contextmanager
def sqlite_server(
    home: Path, *, workers: int, env: dict[str, str] | None = None
) -> Iterator[ServeProcess]:
    """`serve` on a SQLite file under *home* with *workers* local workers, each started and
    announced in /readyz before the body runs (*env* on top of FAST_WORKER_ENV)."""
    process = ServeProcess(
        home, database_url=f"sqlite:///{home / 'sweepdoc.db'}", workers=workers, env_overrides=env
    )
    with serving(process, workers=workers):
        if workers:
            process.wait_for_workers(workers)
        yield process
