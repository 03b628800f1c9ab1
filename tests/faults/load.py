"""Many concurrent HTTP clients reading a real `sweepdoc serve` while its workers train.

The harness behind the load test (tests/faults/test_load.py) and the benchmark
(bench/load_api.py): the same scenario, the same numbers. Loopback only; bounded by a
request budget and a wall-time cap, so it always stops by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.service.factory import tiny_spec
from tests.service.serve_process import ServeProcess


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
                "all": _percentiles(steady + self.first_ms),
                "first_request_of_each_client": _percentiles(self.first_ms),
                "after_the_first": _percentiles(steady),
                **{kind: _percentiles(v) for kind, v in sorted(self.latencies_ms.items())},
            },
        }


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0, "p50": None, "p99": None, "max": None}

    def rank(q: float) -> float:  # nearest rank
        return round(ordered[min(len(ordered) - 1, max(0, int(q * len(ordered) + 0.5) - 1))], 1)

    return {"n": len(ordered), "p50": rank(0.50), "p99": rank(0.99), "max": round(ordered[-1], 1)}


async def _load(
    base_url: str, paths: list[tuple[str, str]], clients: int, total: int, max_wall_s: float
) -> LoadResult:
    result = LoadResult(clients=clients)
    issued = 0
    deadline = time.monotonic() + max_wall_s

    async def client(index: int) -> None:
        nonlocal issued
        async with httpx.AsyncClient(base_url=base_url, timeout=60.0) as http:
            first = True
            while issued < total and time.monotonic() < deadline:
                kind, path = paths[(issued + index) % len(paths)]
                issued += 1
                start = time.perf_counter()
                try:
                    response = await http.get(path)
                except httpx.HTTPError as exc:
                    result.failures.append(f"{path}: {type(exc).__name__}: {exc}")
                    continue
                elapsed_ms = (time.perf_counter() - start) * 1000
                if first:
                    result.first_ms.append(elapsed_ms)
                    first = False
                else:
                    result.latencies_ms.setdefault(kind, []).append(elapsed_ms)
                result.statuses[response.status_code] += 1

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    result.wall_s = time.monotonic() - started
    return result


def run_load(
    base_url: str,
    paths: list[tuple[str, str]],
    *,
    clients: int = 200,
    total_requests: int = 4000,
    max_wall_s: float = 120.0,
) -> LoadResult:
    """*clients* concurrent clients (one connection each) cycle through *paths* (kind, path)
    until *total_requests* were sent or *max_wall_s* passed."""
    if not base_url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"load is only ever sent to loopback, got {base_url!r}")
    return asyncio.run(_load(base_url, paths, clients, total_requests, max_wall_s))


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
    server: ServeProcess, *, clients: int, total_requests: int, max_wall_s: float
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
    server.http.post(f"/v1/studies/{busy['id']}/cancel")
    return result, {"id": busy["id"], "trials": trained}


def _wait_for_training(server: ServeProcess, study_id: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
        if sum(t["state"] == "running" and t["epochs_done"] >= 1 for t in trials) >= 2:
            return
        time.sleep(0.2)
    raise AssertionError(f"the workers did not start training study {study_id}")
