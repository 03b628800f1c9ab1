"""Latency of the read API under 200 concurrent clients while 2 workers train.

Starts a real `sweepdoc serve` (a SQLite file in a temporary folder, 2 local CPU workers,
loopback only), runs a small study to the end so its diagnoses exist, starts a long one so
both workers train throughout, then lets CLIENTS concurrent clients (one connection each)
read study, trial and diagnosis endpoints until REQUESTS were sent or the wall-time cap
passed. Prints p50/p99 per endpoint and writes them to bench/results/load_api.json. The
same harness backs the load test (tests/faults/test_load.py).

    .venv/bin/python bench/load_api.py [--clients 200] [--requests 4000] [--max-wall-s 120]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives under tests/

from bench._common import write_result  # noqa: E402
from tests.faults.load import load_while_training  # noqa: E402
from tests.service.serve_process import ServeProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--max-wall-s", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        server = ServeProcess(home, database_url=f"sqlite:///{home / 'db.sqlite'}", workers=2)
        server.start()
        try:
            result, busy = load_while_training(
                server,
                clients=args.clients,
                total_requests=args.requests,
                max_wall_s=args.max_wall_s,
            )
            code = server.stop()
        finally:
            server.kill()
    summary = result.summary()
    report = {
        "database": "sqlite",
        "workers": 2,
        "epochs_trained_during_load": sum(t["epochs_done"] for t in busy["trials"]),
        "server_exit_code": code,
        **summary,
    }
    print(json.dumps(report, indent=1))
    write_result("load_api", report, out=args.out)
    if summary["failures"] or set(summary["statuses"]) != {"200"}:
        sys.exit(1)


if __name__ == "__main__":
    main()
