"""Worker scaling: what more `sweepdoc worker` processes buy, against one worker.

Two parts, each a ratio to one worker measured in the same run:

- cpu (SQLite, the one-machine set-up): a grid study of real trials (digits, the full
  training split, a 32-channel two-stage CNN, a few epochs) run by 1 worker with as many
  torch threads as the machine has cores, against N workers splitting the cores between
  them (`--torch-threads` = cores / N each). Do processes beat threads for small CNNs?
- queue (PostgreSQL, tiny trials): 1 against 8 workers on tiny one-epoch trials, where the
  queue (claims, heartbeats, Optuna writes) is most of the work; the peak connections in
  pg_stat_activity are reported too (all, and per worker).

Workers are started as on any host (`sweepdoc worker`, settings in SWEEPDOC_* variables).
Throughput is trials/minute from the first claim to the last finish, and training
images/s of all workers together. Writes bench/results/scale_workers.json. The same harness
backs the scale test (tests/scale/test_scale_postgres.py).

    .venv/bin/python bench/scale_workers.py [--parts cpu,queue] [--cpu-workers 1,2]
        [--cpu-trials 24] [--queue-workers 1,8] [--queue-trials 40] [--device cuda]
        [--server-url postgresql+psycopg://postgres@host:port/postgres]

Without --server-url a private PostgreSQL is started (Debian's postgresql package, as the
test suite does). On a machine with fewer cores than workers the CPU is the limit, not the
database: read the figures with the core count printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness and the PostgreSQL helper live under tests/

from bench._common import write_result  # noqa: E402
from tests.postgres_server import create_database, running_postgres  # noqa: E402
from tests.scale.harness import ScaleRun, run_workers  # noqa: E402


def cpu_study(trials: int, epochs: int, max_parallel: int) -> dict[str, Any]:
    """A grid of *trials* sensible learning rates on digits; each trial a few seconds."""
    lrs = [round(10 ** (-3 + 2 * i / max(1, trials - 1)), 6) for i in range(trials)]
    return {
        "name": f"cpu-scale-{trials}",
        "dataset": "digits",
        "data": {"augment": "none"},
        "model": {"arch": "simple", "width": 32, "stages": 2},
        "train": {"epochs": epochs, "batch_size": 64, "schedule": "none"},
        "search": {"sampler": "grid", "grid": lrs},
        "max_parallel": max_parallel,
    }


def _checked(run: ScaleRun, label: str) -> dict[str, Any]:
    if any(run.exit_codes):
        raise SystemExit(f"{label}: exit codes {run.exit_codes}\n{run.logs}")
    print(json.dumps({"part": label, **run.row()}), flush=True)
    return run.row()


def cpu_part(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    cores = os.cpu_count() or 1
    rows = []
    for workers in args.cpu_workers:
        threads = max(1, cores // workers)
        url = f"sqlite:///{tmp}/cpu-{workers}.db"
        run = run_workers(
            url, workers=workers, trials=args.cpu_trials, home=tmp / f"cpu-{workers}",
            device="cpu", torch_threads=threads, timeout_s=1800,
            spec=cpu_study(args.cpu_trials, args.cpu_epochs, max_parallel=workers),
        )
        rows.append({**_checked(run, f"cpu {workers}"), "torch_threads": threads})
    return _with_ratios(rows)


def queue_part(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> list[dict[str, Any]]:
    server = args.server_url or stack.enter_context(running_postgres())
    rows = []
    for workers in args.queue_workers:
        run = run_workers(
            create_database(server), workers=workers, trials=args.queue_trials,
            home=tmp / f"queue-{workers}", device=args.device,
        )
        rows.append({**_checked(run, f"queue {workers}"), "torch_threads": 1})
    return _with_ratios(rows)


def _with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's throughput as a multiple of the first row's (one worker)."""
    base = rows[0]["trials_per_minute"] or 1.0
    return [{**row, "speedup": round(row["trials_per_minute"] / base, 2)} for row in rows]


def _print(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print("workers  threads  trials/min  images/s  speedup  active s  peak conns/worker")
    for row in rows:
        print(
            f"{row['workers']:7d}  {row['torch_threads']:7d}  {row['trials_per_minute']:10.1f}  "
            f"{row['images_per_s']:8.0f}  {row['speedup']:7.2f}  {row['active_s']:8.1f}  "
            f"{row['peak_connections_per_worker']:17d}"
        )


def _counts(text: str) -> list[int]:
    return [int(c) for c in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="cpu,queue", help="cpu, queue or both")
    parser.add_argument("--cpu-workers", type=_counts, default=[1, 2])
    parser.add_argument("--cpu-trials", type=int, default=24)
    parser.add_argument("--cpu-epochs", type=int, default=5)
    parser.add_argument("--queue-workers", type=_counts, default=[1, 8])
    parser.add_argument("--queue-trials", type=int, default=40)
    parser.add_argument("--device", default="cpu", help="queue part's --device (cuda: a GPU)")
    parser.add_argument("--server-url", default=None, help="a PostgreSQL superuser URL")
    args = parser.parse_args()
    parts = set(args.parts.split(","))

    result: dict[str, Any] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if "cpu" in parts:
            result["cpu"] = {
                "database": "sqlite", "trials": args.cpu_trials, "epochs": args.cpu_epochs,
                "spec": cpu_study(args.cpu_trials, args.cpu_epochs, max_parallel=1),
                "runs": cpu_part(args, tmp),
            }
        if "queue" in parts:
            result["queue"] = {
                "database": "postgresql", "trials": args.queue_trials, "device": args.device,
                "runs": queue_part(args, tmp, stack),
            }
    write_result("scale_workers", result)
    cores = os.cpu_count()
    if "cpu" in result:
        _print(
            f"cpu: {args.cpu_trials} digits trials x {args.cpu_epochs} epochs, SQLite, "
            f"{cores} cores split between the workers",
            result["cpu"]["runs"],
        )
    if "queue" in result:
        _print(
            f"queue: {args.queue_trials} tiny trials, PostgreSQL, {cores} cores, {args.device}",
            result["queue"]["runs"],
        )


if __name__ == "__main__":
    main()
