"""API throughput: requests/s and latency of three endpoints at 1, 16 and 64 concurrent clients.

Starts a real `sweepdoc serve` (a SQLite file in a temporary SWEEPDOC_HOME, loopback only)
with one local CPU worker, runs a small grid study (two trials of three epochs, so the stored
diagnoses are real labels, not "inconclusive") to the end, then restarts the server with
`--workers 0` on the same database: nothing trains or polls the queue while it is measured.
For each endpoint

- GET /v1/studies/{id} (the study with its trial counts and best trial),
- GET /v1/trials/{id}/diagnosis (a stored diagnosis),
- POST /v1/diagnose (30-epoch curves, the diagnoser runs per request, nothing stored),
- and as the baseline, GET /healthz (no database): each endpoint's requests/s is also given
  as a ratio to it at the same concurrency, i.e. to what the HTTP stack alone costs here,

and each concurrency, that many clients (asyncio + httpx in this process, not the server's;
one keep-alive connection each) send requests back to back: a warm-up that is not measured,
then a fixed window, or until the request cap (tests/faults/load.py, ``run_window``).
Prints requests/s and p50/p99/max latency per cell, with every status and transport error
(warm-up included), and writes bench/results/api_throughput.json. The load generator and
the server share the machine's cores: read the numbers with the core count beside them.

    .venv/bin/python bench/api_throughput.py [--clients 1,16,64] [--seconds 8] [--warmup-s 2]
        [--max-requests 50000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve and load harnesses live under tests/

from bench._common import percentiles, write_result  # noqa: E402
from tests.faults.load import Call, WindowResult, run_window  # noqa: E402
from tests.service.factory import healthy_curves, tiny_spec  # noqa: E402
from tests.service.serve_process import ServeProcess  # noqa: E402

# The epochs of the curves POSTed to /v1/diagnose: a realistic run's length.
DIAGNOSE_EPOCHS = 30
# Transport errors kept verbatim per cell (all are counted).
SHOWN_FAILURES = 5


def finished_study(server: ServeProcess) -> tuple[int, int]:
    """Run a small grid study to the end; its id and a trial id with a stored diagnosis."""
    response = server.http.post(
        "/v1/studies", json=tiny_spec("throughput", grid=(0.1, 0.01), epochs=3)
    )
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    study = server.wait_for_study(study_id, timeout_s=300)
    assert study["status"] == "completed", (study, server.log())
    trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
    diagnosed = [t["id"] for t in trials if t["label"] is not None]
    assert diagnosed, trials
    return study_id, diagnosed[0]


# The baseline: the same server's cheapest route (no database, no token check), so each
# endpoint's figures read as a ratio to what the HTTP stack alone costs on this machine.
BASELINE = "GET /healthz"


def endpoint_calls(study_id: int, trial_id: int) -> list[Call]:
    return [
        Call(BASELINE, "/healthz"),
        Call("GET /v1/studies/{id}", f"/v1/studies/{study_id}"),
        Call("GET /v1/trials/{id}/diagnosis", f"/v1/trials/{trial_id}/diagnosis"),
        Call("POST /v1/diagnose", "/v1/diagnose", method="POST",
             body=healthy_curves(DIAGNOSE_EPOCHS)),
    ]


def cell(call: Call, clients: int, result: WindowResult) -> dict[str, Any]:
    """One row of the table: an endpoint at one concurrency."""
    return {
        "endpoint": call.kind,
        "clients": clients,
        "window_s": round(result.window_s, 2),
        "capped": result.capped,
        "requests": len(result.latencies_ms),
        "requests_per_s": round(result.requests_per_s, 1),
        "latency_ms": percentiles(result.latencies_ms, digits=2),
        "statuses": {str(k): v for k, v in sorted(result.statuses.items())},
        "failures": len(result.failures),
        "failure_examples": sorted(set(result.failures))[:SHOWN_FAILURES],
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'endpoint':<31}{'clients':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'max ms':>9}  statuses / failures")
    for row in rows:
        latency = row["latency_ms"]
        errors = f", {row['failures']} transport errors" if row["failures"] else ""
        print(f"{row['endpoint']:<31}{row['clients']:>8}{row['requests_per_s']:>9.1f}"
              f"{latency['p50']:>9.2f}{latency['p99']:>9.2f}{latency['max']:>9.2f}  "
              f"{row['statuses']}{errors}")
    print(f"\n{os.cpu_count()} CPU cores shared by the server (one uvicorn process) and the "
          "load generator (one asyncio process): on a small machine the client's own CPU "
          "time is part of every figure.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="1,16,64", help="comma-separated concurrencies")
    parser.add_argument("--seconds", type=float, default=8.0, help="measured window per cell")
    parser.add_argument("--warmup-s", type=float, default=2.0, help="unmeasured, per cell")
    parser.add_argument("--max-requests", type=int, default=50_000,
                        help="per cell: the window closes early once this many arrived")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/")
    args = parser.parse_args()
    concurrencies = [int(c) for c in args.clients.split(",")]

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        server = ServeProcess(home, database_url=f"sqlite:///{home / 'db.sqlite'}", workers=1,
                              fast_workers=False)
        try:
            server.start()
            study_id, trial_id = finished_study(server)
            assert server.stop() == 0, server.log()
            server.workers = 0  # measured with no worker: nothing trains or polls
            server.restart()
            for call in endpoint_calls(study_id, trial_id):
                for clients in concurrencies:
                    result = run_window(
                        server.url, call, clients=clients, warmup_s=args.warmup_s,
                        duration_s=args.seconds, max_requests=args.max_requests,
                    )
                    rows.append(cell(call, clients, result))
                    print(f"  {call.kind} x{clients}: {rows[-1]['requests_per_s']} req/s",
                          flush=True)
            exit_code = server.stop()
        finally:
            server.kill()
    floor = {r["clients"]: r["requests_per_s"] for r in rows if r["endpoint"] == BASELINE}
    for row in rows:
        base = floor.get(row["clients"])
        row["vs_healthz"] = round(row["requests_per_s"] / base, 3) if base else None
    write_result("api_throughput", {
        "database": "sqlite",
        "server": "sweepdoc serve --workers 0 (after one local worker finished the study)",
        "load_generator": "this process: asyncio + httpx, one keep-alive connection per client",
        "seconds_per_cell": args.seconds,
        "warmup_s_per_cell": args.warmup_s,
        "max_requests_per_cell": args.max_requests,
        "diagnose_epochs": DIAGNOSE_EPOCHS,
        "baseline": BASELINE,
        "server_exit_code": exit_code,
        "cells": rows,
    }, out=args.out)
    print_table(rows)
    if any(r["failures"] or set(r["statuses"]) != {"200"} for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
