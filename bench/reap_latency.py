"""Kill-to-reap latency: how soon a killed worker's trial is failed and run again.

What tests/studies/test_workers.py no longer asserts (a timing bound has no place in a test
on two busy cores): the documented bound is the dead worker's heartbeat grace plus one
reaper round (``stale_after_s + heartbeat_interval_s``). Each round starts a real worker
process (the victim) on a SQLite file, waits until its trial is mid-run, then starts an
idle peer (the reaper: a worker with the same settings, whose poll loop reaps at most every
heartbeat interval), kills the victim with SIGKILL and reads from the database when the
attempt was failed (its ``sweepdoc_attempts`` row) and when the slot was claimed again. The
studies run one slot at a time (``max_parallel=1``), so the peer cannot claim anything
before the reap.

    .venv/bin/python bench/reap_latency.py [--rounds 5] [--settings 3:0.5,10:1]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench._common import percentiles, write_result  # noqa: E402
from studies import store  # noqa: E402
from studies.db import AttemptRow, Database, TrialRow, WorkerRow  # noqa: E402
from studies.optuna_bridge import close_storages  # noqa: E402
from studies.schema_setup import create_schema  # noqa: E402
from studies.spec import parse_spec  # noqa: E402
from studies.worker import WorkerOptions  # noqa: E402
from tests.waiting import wait_until  # noqa: E402

_WORKER_MAIN = (
    "import sys\n"
    "from studies.worker import WorkerOptions, run_worker\n"
    "run_worker(WorkerOptions.model_validate_json(sys.argv[1]))\n"
)
# A trial long enough to be mid-run for as long as a round needs (it is cancelled after).
_LONG_TRIAL = {
    "dataset": "digits",
    "data": {"train_subset": 300},
    "model": {"width": 4, "stages": 1},
    "train": {"epochs": 500, "batch_size": 8, "schedule": "none"},
    "search": {"sampler": "grid", "grid": [0.05]},
    "max_parallel": 1,
}


def _start_worker(
    url: str, home: Path, name: str, stale_after_s: float, heartbeat_s: float
) -> subprocess.Popen[bytes]:
    options = WorkerOptions(
        database_url=url,
        data_dir=home / "data",
        artifacts_dir=home / "artifacts",
        name=name,
        poll_interval_s=0.2,
        heartbeat_interval_s=heartbeat_s,
        stale_after_s=stale_after_s,
        torch_threads=1,
    )
    log = (home / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER_MAIN, options.model_dump_json()],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )


def _wait(check: Any, what: str) -> Any:
    return wait_until(check, what, timeout_s=300.0)


def _worker_seen(db: Database, name: str) -> bool:
    with db.session() as session:
        return session.get(WorkerRow, name) is not None


def _round(
    db: Database, home: Path, index: int, stale_after_s: float, heartbeat_s: float
) -> dict[str, float]:
    study = store.submit_study(
        db, parse_spec({**_LONG_TRIAL, "name": f"reap-{index}"}), artifacts_dir=home / "artifacts"
    )
    slot = store.list_trials(db, study.id).data[0].id
    victim = _start_worker(db.url, home, f"victim-{index}", stale_after_s, heartbeat_s)
    peer = None
    try:
        _wait(lambda: store.get_trial(db, slot).epochs_done >= 1, "the victim's first epoch")
        peer = _start_worker(db.url, home, f"peer-{index}", stale_after_s, heartbeat_s)
        _wait(lambda: _worker_seen(db, f"peer-{index}"), "the peer to poll")
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.wait()

        def reclaimed() -> tuple[datetime, datetime] | None:
            with db.session() as session:
                failed = session.scalars(
                    select(AttemptRow).where(AttemptRow.trial_id == slot, AttemptRow.attempt == 1)
                ).first()
                row = session.get_one(TrialRow, slot)
                if failed is None or row.attempt < 2 or row.claimed_at is None:
                    return None
                return failed.finished_at, row.claimed_at

        reaped_at, claimed_at = _wait(reclaimed, "the slot to be reaped and claimed again")
    finally:
        store.cancel_study(db, study.id)
        for proc in (victim, peer):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=120)
    return {
        "kill_to_reap_s": (reaped_at - killed_at).total_seconds(),
        "kill_to_rerun_s": (claimed_at - killed_at).total_seconds(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--settings",
        default="3:0.5,10:1",
        help="comma-separated stale_after_s:heartbeat_interval_s pairs",
    )
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/")
    args = parser.parse_args()

    rows = []
    for pair in args.settings.split(","):
        stale_after_s, heartbeat_s = (float(x) for x in pair.split(":"))
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp)
            db = Database(f"sqlite:///{home / 'reap.db'}")
            create_schema(db)
            try:
                rounds = [
                    _round(db, home, i, stale_after_s, heartbeat_s) for i in range(args.rounds)
                ]
            finally:
                db.dispose()
                close_storages()
        row = {
            "stale_after_s": stale_after_s,
            "heartbeat_interval_s": heartbeat_s,
            "documented_bound_s": stale_after_s + heartbeat_s,
            "rounds": len(rounds),
            "kill_to_reap_s": percentiles([r["kill_to_reap_s"] for r in rounds]),
            "kill_to_rerun_s": percentiles([r["kill_to_rerun_s"] for r in rounds]),
            "within_bound": sum(r["kill_to_reap_s"] <= stale_after_s + heartbeat_s for r in rounds),
        }
        print(row, flush=True)
        rows.append(row)
    write_result("reap_latency", {"database": "sqlite", "settings": rows}, out=args.out)


if __name__ == "__main__":
    main()
