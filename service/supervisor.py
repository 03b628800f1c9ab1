"""Local `sweepdoc worker` processes started and watched by `sweepdoc serve` and `demo`.

Each worker is its own process (a crashed or killed worker takes nothing else down) in its
own session, so a Ctrl-C in the terminal reaches only the server, which then stops the
workers in order: SIGTERM (the worker stops its trial at the next epoch and records it),
then SIGKILL after a grace period. A worker that dies on its own is started again with
growing back-off; the heartbeat reaper in the studies layer re-queues the trial it held.

A killed server (kill -9, OOM killer) does not take its workers' trials with it: each worker
watches the server's pid and, once the server is gone, finishes the trial it is training,
stores the result, and exits without claiming another. With a *pid_dir*, every worker's pid is
written to `<pid_dir>/<name>.pid`; a restarted server finds such a survivor (same name, still
running `service worker`), adopts it (it is signalled on stop like the server's own
children), and starts that slot's new worker only once the survivor has exited, so a restart
never runs more workers than planned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

logger = logging.getLogger(__name__)

# Back-off before restarting a worker that exited on its own: doubles from the first value
# up to the last, and resets once a worker has stayed up for `_HEALTHY_AFTER_S`.
_RESTART_BACKOFF_S = (1.0, 30.0)
_HEALTHY_AFTER_S = 60.0
_POLL_S = 0.5


@dataclass(frozen=True)
class WorkerPlan:
    """One local worker to run: its name and the device it trains on."""

    name: str
    device: str


def detect_devices() -> list[str]:
    """One entry per visible CUDA GPU (`cuda:N`), else `["cpu"]`."""
    import torch  # deferred: importing torch takes seconds and only `--workers auto` needs it

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return [f"cuda:{i}" for i in range(count)] or ["cpu"]


def plan_workers(
    count: int | None, devices: Sequence[str], *, prefix: str, per_gpu: int = 1
) -> list[WorkerPlan]:
    """The local workers to run on *devices* (``detect_devices()``: GPUs, else CPU).

    *count* None (``--workers auto``): *per_gpu* workers on each GPU, or with no GPU one
    worker per CPU core up to ``MAX_AUTO_CPU_WORKERS`` (each gets its share of the cores as
    torch threads); a number: that many, round-robin over *devices*. Each worker is pinned
    to its GPU with ``--device cuda:N`` (N counts the GPUs CUDA_VISIBLE_DEVICES leaves).
    """
    if per_gpu < 1:
        raise ValueError(f"per_gpu must be at least 1, got per_gpu={per_gpu}")
    if count is None:
        gpus = [d for d in devices if d.startswith("cuda")]
        count = len(gpus) * per_gpu if gpus else auto_cpu_workers()
    if count and not devices:
        raise ValueError(f"{count} worker(s) planned on no device")
    return [
        WorkerPlan(name=f"{prefix}-{i}", device=devices[i % len(devices)]) for i in range(count)
    ]


# Small CNNs do not keep several torch threads busy: on 2 cores, two single-threaded workers
# train 1.65x the trials per minute of one worker with two threads (docs/benchmarks.md,
# "Worker scaling"). Beyond 4, a default study (max_parallel 4) has no trial left for them,
# and each worker holds its own copy of torch in memory.
MAX_AUTO_CPU_WORKERS = 4


def auto_cpu_workers() -> int:
    """``--workers auto`` on a machine without a GPU: one worker per core, at most 4."""
    return max(1, min(os.cpu_count() or 1, MAX_AUTO_CPU_WORKERS))


def cpu_threads_per_worker(n_cpu_workers: int) -> int:
    """Torch threads for each CPU worker so that together they do not oversubscribe the cores."""
    cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_cpu_workers))


def _pid_alive(pid: int) -> bool:
    """Whether *pid* runs (a zombie, already dead, does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _is_worker(pid: int, name: str) -> bool:
    """Whether *pid* is a live `service worker --name NAME` (not a recycled pid)."""
    return _worker_argv(pid, name) is not None


def _worker_argv(pid: int, name: str) -> list[bytes] | None:
    if not _pid_alive(pid):
        return None
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return argv if b"worker" in argv and name.encode() in argv else None


def _is_orphan(pid: int, name: str) -> bool:
    """Whether *pid* is worker *name* whose server (its `--parent-pid`) is gone: a second
    server on the same state folder must not adopt the workers of a live first one."""
    argv = _worker_argv(pid, name)
    if argv is None or b"--parent-pid" not in argv:
        return False
    parent = argv[argv.index(b"--parent-pid") + 1]
    return not (parent.isdigit() and _pid_alive(int(parent)))


@dataclass
class _Slot:
    plan: WorkerPlan
    process: subprocess.Popen[bytes] | None = None
    orphan_pid: int | None = None  # a previous server's worker of this slot, still finishing
    started_at: float = 0.0
    backoff_s: float = _RESTART_BACKOFF_S[0]
    restart_at: float | None = None
    restarts: int = 0
    log: IO[bytes] | None = field(default=None, repr=False)


class LocalWorkers:
    """Starts, restarts and stops local worker processes.

    *env* is the complete environment of the workers (settings travel as `SWEEPDOC_*`
    variables, so workers use the server's database and folders). With *log_dir*, each
    worker's output goes to `<log_dir>/<name>.log` instead of the server's terminal.
    """

    def __init__(
        self,
        plans: Sequence[WorkerPlan],
        *,
        env: Mapping[str, str],
        log_dir: Path | None = None,
        pid_dir: Path | None = None,
    ) -> None:
        self._slots = [_Slot(plan=plan) for plan in plans]
        self._env = dict(env)
        self._log_dir = log_dir
        self._pid_dir = pid_dir
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._monitor: threading.Thread | None = None

    @property
    def plans(self) -> list[WorkerPlan]:
        return [slot.plan for slot in self._slots]

    def restarts(self) -> int:
        """How often workers had to be started again since `start`."""
        with self._lock:
            return sum(slot.restarts for slot in self._slots)

    def start(self) -> None:
        """Start every worker and the thread that restarts those that die."""
        n_cpu = sum(1 for s in self._slots if s.plan.device == "cpu")
        with self._lock:
            for slot in self._slots:
                slot.orphan_pid = self._survivor(slot.plan.name)
                if slot.orphan_pid is None:
                    self._spawn(slot, n_cpu)
                else:
                    logger.warning(
                        "worker %s (pid %d) of a previous server is still finishing its trial; "
                        "its replacement starts once it exits",
                        slot.plan.name,
                        slot.orphan_pid,
                    )
        self._monitor = threading.Thread(
            target=self._watch, args=(n_cpu,), name="sweepdoc-workers", daemon=True
        )
        self._monitor.start()

    def _command(self, plan: WorkerPlan, n_cpu: int) -> list[str]:
        command = [sys.executable, "-m", "service", "worker", "--device", plan.device]
        command += ["--name", plan.name, "--parent-pid", str(os.getpid())]
        if plan.device == "cpu":
            # Several CPU workers each using every core would thrash; share the cores out.
            command += ["--torch-threads", str(cpu_threads_per_worker(n_cpu))]
        return command

    def _pid_file(self, name: str) -> Path | None:
        return self._pid_dir / f"{name}.pid" if self._pid_dir is not None else None

    def _survivor(self, name: str) -> int | None:
        """The pid of a previous server's worker *name* that still runs, if any."""
        path = self._pid_file(name)
        try:
            pid = int(path.read_text()) if path is not None else None
        except (FileNotFoundError, ValueError):
            return None
        return pid if pid is not None and _is_orphan(pid, name) else None

    def _spawn(self, slot: _Slot, n_cpu: int) -> None:
        env = dict(self._env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        stdout: IO[bytes] | None = None
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            if slot.log is None:
                slot.log = (self._log_dir / f"{slot.plan.name}.log").open("ab")
            stdout = slot.log
        slot.process = subprocess.Popen(
            self._command(slot.plan, n_cpu),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,  # Ctrl-C reaches the server only; it stops us in order
        )
        slot.started_at = time.monotonic()
        slot.restart_at = None
        pid_file = self._pid_file(slot.plan.name)
        if pid_file is not None:
            pid_file.parent.mkdir(parents=True, exist_ok=True)
            pid_file.write_text(str(slot.process.pid))
        logger.info(
            "started worker %s on %s (pid %d)", slot.plan.name, slot.plan.device, slot.process.pid
        )

    def _watch(self, n_cpu: int) -> None:
        while not self._stopping.wait(_POLL_S):
            with self._lock:
                if self._stopping.is_set():
                    return
                now = time.monotonic()
                for slot in self._slots:
                    self._check(slot, now, n_cpu)

    def _check(self, slot: _Slot, now: float, n_cpu: int) -> None:
        if slot.orphan_pid is not None:
            if _is_worker(slot.orphan_pid, slot.plan.name):
                return
            logger.info("worker %s of a previous server has exited", slot.plan.name)
            slot.orphan_pid = None
            self._spawn(slot, n_cpu)
            return
        if slot.process is None:
            return
        code = slot.process.poll()
        if code is None:
            if now - slot.started_at > _HEALTHY_AFTER_S:
                slot.backoff_s = _RESTART_BACKOFF_S[0]
            return
        if slot.restart_at is None:
            slot.restart_at = now + slot.backoff_s
            logger.warning(
                "worker %s (pid %d) exited with code %s; restarting it in %.0f s",
                slot.plan.name,
                slot.process.pid,
                code,
                slot.backoff_s,
            )
            slot.backoff_s = min(slot.backoff_s * 2, _RESTART_BACKOFF_S[1])
        elif now >= slot.restart_at:
            slot.restarts += 1
            self._spawn(slot, n_cpu)

    def stop(self, grace_s: float, *, force: threading.Event | None = None) -> None:
        """Stop every worker: SIGTERM, then SIGKILL after *grace_s* (or once *force* is set)."""
        self._stopping.set()
        if self._monitor is not None:
            self._monitor.join()
        with self._lock:
            running = [s.process for s in self._slots if s.process and s.process.poll() is None]
            orphans = [
                (s.orphan_pid, s.plan.name)
                for s in self._slots
                if s.orphan_pid is not None and _is_worker(s.orphan_pid, s.plan.name)
            ]
            for process in running:
                _signal(process, signal.SIGTERM)
            for pid, _name in orphans:
                _kill(pid, signal.SIGTERM)

            def alive() -> list[int]:
                pids = [p.pid for p in running if p.poll() is None]
                return pids + [pid for pid, name in orphans if _is_worker(pid, name)]

            deadline = time.monotonic() + grace_s
            while alive():
                if time.monotonic() >= deadline or (force is not None and force.is_set()):
                    for pid in alive():
                        logger.warning("worker %d did not stop in time; killing it", pid)
                        _kill(pid, signal.SIGKILL)
                    break
                time.sleep(0.1)
            for process in running:
                process.wait()
            for slot in self._slots:
                if slot.log is not None:
                    slot.log.close()
                    slot.log = None


def _signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited between the poll and the signal
        process.send_signal(sig)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # exited between the check and the signal
        os.kill(pid, sig)
