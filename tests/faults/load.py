"""Many concurrent HTTP clients reading a real `sweepdoc serve` while its workers train.

The harness behind the load test (tests/faults/test_load.py) and the benchmarks
(bench/load_api.py: the same scenario, the same numbers; bench/api_throughput.py: one
endpoint at a time for a fixed window, ``run_window``). Loopback only; bounded by a request
budget and a wall-time cap, so it always stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench._common import percentiles
from tests.service.factory import tiny_spec
from tests.service.serve_process import ServeProcess


@dataclass(frozen=True)
class Call:
    """One request a client sends: a GET, or a POST of *body* as JSON."""

    kind: str  # the name latencies are filed under
    path: str
    method: str = "GET"
    body: dict[str, Any] | None = None


async def _timed_send(
    http: httpx.AsyncClient, call: Call
) -> tuple[httpx.Response | None, float, str | None]:
    """Send *call*: (the response or None, elapsed ms, a transport error's line or None)."""
    start = time.perf_counter()
    try:
        response = await http.request(call.method, call.path, json=call.body)
    except httpx.HTTPError as exc:
        elapsed_ms = (time.perf_counter() - start) * 1000
        return None, elapsed_ms, f"{call.path}: {type(exc).__name__}: {exc}"
    return response, (time.perf_counter() - start) * 1000, None


def _check_loopback(base_url: str) -> None:
    if not base_url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"load is only ever sent to loopback, got {base_url!r}")


@dataclass
class LoadResult:
    clients: int
    wall_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # transport errors, one line each
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)  # per endpoint kind
    # Each client's first request (connection set-up, all clients arriving at once) apart:
    # it is where the tail lives, and the steady-state numbers per endpoint exclude it.
    first_ms: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values()) + len(self.failures)

    def summary(self) -> dict[str, Any]:
        steady = [ms for values in self.latencies_ms.values() for ms in values]
        return {
            "clients": self.clients,
            "requests": self.requests,
            "wall_s": round(self.wall_s, 2),
            "requests_per_s": round(self.requests / self.wall_s, 1) if self.wall_s else None,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "failures": len(self.failures),
            "latency_ms": {
                "all": percentiles(steady + self.first_ms),
                "first_request_of_each_client": percentiles(self.first_ms),
                "after_the_first": percentiles(steady),
                **{kind: percentiles(v) for kind, v in sorted(self.latencies_ms.items())},
            },
        }


async def _load(
    base_url: str,
    paths: list[tuple[str, str]],
    clients: int,
    total: int,
    max_wall_s: float | None,
) -> LoadResult:
    result = LoadResult(clients=clients)
    issued = 0

    async def client(index: int, http: httpx.AsyncClient) -> None:
        nonlocal issued
        first = True
        while issued < total and (deadline is None or time.monotonic() < deadline):
            kind, path = paths[(issued + index) % len(paths)]
            issued += 1
            response, elapsed_ms, failure = await _timed_send(http, Call(kind, path))
            if response is None:
                result.failures.append(str(failure))
                continue
            if first:
                result.first_ms.append(elapsed_ms)
                first = False
            else:
                result.latencies_ms.setdefault(kind, []).append(elapsed_ms)
            result.statuses[response.status_code] += 1

    async with contextlib.AsyncExitStack() as stack:
        # Clients are built before the clock starts (see _window): building 200 of them
        # inside it blocked the event loop for seconds and showed up as a latency tail.
        https = [
            await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, timeout=60.0))
            for _ in range(clients)
        ]
        deadline = None if max_wall_s is None else time.monotonic() + max_wall_s
        started = time.monotonic()
        await asyncio.gather(*(client(i, http) for i, http in enumerate(https)))
        result.wall_s = time.monotonic() - started
    return result


def run_load(
    base_url: str,
    paths: list[tuple[str, str]],
    *,
    clients: int = 200,
    total_requests: int = 4000,
    max_wall_s: float | None = 120.0,
) -> LoadResult:
    """*clients* concurrent clients (one connection each) cycle through *paths* (kind, path)
    until *total_requests* were sent or *max_wall_s* passed (None: no time cap; the test
    sends them all, however long a busy machine takes, and the benchmark caps the time)."""
    _check_loopback(base_url)
    return asyncio.run(_load(base_url, paths, clients, total_requests, max_wall_s))


@dataclass
class WindowResult:
    """One measurement window: the latencies of the responses that arrived inside it, and
    every status and transport error of the run (warm-up included, so none is hidden)."""

    clients: int
    window_s: float = 0.0
    capped: bool = False  # the request cap, not the window's length, ended it
    latencies_ms: list[float] = field(default_factory=list)  # in the window, any status
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.window_s if self.window_s > 0 else 0.0


async def _window(
    base_url: str, call: Call, clients: int, warmup_s: float, duration_s: float, cap: int
) -> WindowResult:
    result = WindowResult(clients=clients)
    capped_at: float | None = None
    # One connection per client, kept alive: a client is one user's session.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        # Every client is built before the clock starts: building one (an SSL context, tens
        # of ms of CPU) blocks the event loop, and 64 of them in the warm-up would stall the
        # first requests of all the others by seconds.
        https = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base_url, timeout=30.0, limits=limits)
            )
            for _ in range(clients)
        ]
        opens = time.monotonic() + warmup_s
        closes = opens + duration_s

        async def client(http: httpx.AsyncClient) -> None:
            nonlocal capped_at
            while capped_at is None and time.monotonic() < closes:
                response, elapsed_ms, failure = await _timed_send(http, call)
                arrived = time.monotonic()
                if response is None:
                    result.failures.append(str(failure))
                    continue
                result.statuses[response.status_code] += 1
                if capped_at is None and opens <= arrived <= closes:
                    result.latencies_ms.append(elapsed_ms)
                    if len(result.latencies_ms) >= cap:
                        capped_at = arrived

        await asyncio.gather(*(client(http) for http in https))
    result.capped = capped_at is not None
    result.window_s = (capped_at or closes) - opens
    return result


def run_window(
    base_url: str,
    call: Call,
    *,
    clients: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
) -> WindowResult:
    """*clients* concurrent clients (one keep-alive connection each) send *call* back to
    back for *warmup_s* (not measured: connections open, caches fill), then for
    *duration_s*, or until *max_requests* responses arrived in the window."""
    _check_loopback(base_url)
    return asyncio.run(_window(base_url, call, clients, warmup_s, duration_s, max_requests))


def read_paths(server: ServeProcess) -> list[tuple[str, str]]:
    """The study, trial and diagnosis reads of a finished study (submitted here)."""
    done = server.http.post("/v1/studies", json=tiny_spec("load-done", grid=(0.1, 0.01)))
    assert done.status_code == 201, done.text
    study_id = done.json()["id"]
    assert server.wait_for_study(study_id, timeout_s=180)["status"] == "completed"
    trial_ids = [t["id"] for t in server.get(f"/v1/studies/{study_id}/trials")["data"]]
    paths = [
        ("studies", "/v1/studies"),
        ("study", f"/v1/studies/{study_id}"),
        ("trials", f"/v1/studies/{study_id}/trials"),
        ("study_diagnosis", f"/v1/studies/{study_id}/diagnosis"),
    ]
    for trial_id in trial_ids:
        paths += [
            ("trial", f"/v1/trials/{trial_id}"),
            ("trial_diagnosis", f"/v1/trials/{trial_id}/diagnosis"),
        ]
    return paths


def load_while_training(
    server: ServeProcess, *, clients: int, total_requests: int, max_wall_s: float | None
) -> tuple[LoadResult, dict[str, Any]]:
    """Read *server* hard while its workers train a long study; the load's result and that
    study as it stood afterwards (it is cancelled then, so the server stops quickly)."""
    paths = read_paths(server)
    spec = tiny_spec("load-training", grid=(0.05, 0.02, 0.005, 0.002), epochs=200)
    spec["train"]["batch_size"] = 16
    busy = server.http.post("/v1/studies", json=spec).json()
    _wait_for_training(server, busy["id"])
    result = run_load(
        server.url, paths, clients=clients, total_requests=total_requests, max_wall_s=max_wall_s
    )
    trained = server.get(f"/v1/studies/{busy['id']}/trials")["data"]
    server.http.post(f"/v1/studies/{busy['id']}/cancel", json={})
    return result, {"id": busy["id"], "trials": trained}


def _wait_for_training(server: ServeProcess, study_id: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
        if sum(t["state"] == "running" and t["epochs_done"] >= 1 for t in trials) >= 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers did not start training study {study_id}")
