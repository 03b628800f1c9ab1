"""Throughput of N `sweepdoc worker` processes on one PostgreSQL, and the connections they hold.

For each worker count, a fresh database gets a grid study of tiny trials (digits, one epoch,
a 4-channel CNN, one torch thread per worker) and that many workers run it, started as
`sweepdoc worker` is on any host. Prints trials/minute (first claim to last finish), the wall
time with start-up, and the peak connections in pg_stat_activity (all, and per worker);
writes the table to bench/results/scale_workers.json. The same harness backs the scale test
(tests/scale/test_scale_postgres.py).

    .venv/bin/python bench/scale_workers.py [--workers 1,2,4,8] [--trials 40] [--device cuda]
        [--server-url postgresql+psycopg://postgres@host:port/postgres]

Without --server-url a private PostgreSQL is started (Debian's postgresql package, as the
test suite does). On a machine with fewer cores than workers the CPU is the limit, not the
database: read the figures with the core count printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness and the PostgreSQL helper live under tests/

from tests.postgres_server import create_database, running_postgres  # noqa: E402
from tests.scale.harness import run_workers  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,8", help="comma-separated worker counts")
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="every worker's --device (cuda: a GPU)")
    parser.add_argument("--server-url", default=None, help="a PostgreSQL superuser URL")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/scale_workers.json")
    args = parser.parse_args()
    counts = [int(c) for c in args.workers.split(",")]

    rows = []
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        server = args.server_url or stack.enter_context(running_postgres())
        for workers in counts:
            run = run_workers(
                create_database(server), workers=workers, trials=args.trials,
                home=Path(tmp) / f"w{workers}", device=args.device,
            )
            if any(run.exit_codes):
                raise SystemExit(f"{workers} workers: exit codes {run.exit_codes}\n{run.logs}")
            rows.append(run.row())
            print(json.dumps(run.row()), flush=True)

    print(f"\n{args.trials} tiny trials on PostgreSQL, {os.cpu_count()} CPU cores, {args.device}")
    print("workers  trials/min  active s  wall s  peak conns  per worker")
    for row in rows:
        print(
            f"{row['workers']:7d}  {row['trials_per_minute']:10.1f}  {row['active_s']:8.1f}  "
            f"{row['wall_s']:6.1f}  {row['peak_connections']:10d}  "
            f"{row['peak_connections_per_worker']:10d}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
                "trials": args.trials,
                "device": args.device,
                "runs": rows,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"written to {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
