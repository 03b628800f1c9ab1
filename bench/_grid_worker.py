"""One study through one real worker in this process (SQLite file, no server): the harness of
`bench/pack.py --quick` and `bench/pack_overhead.py`.

Imports nothing from bench/ and only `studies` / `trainer` names that predate issue 15, so
it also runs as a script on an older tree: `PYTHONSAFEPATH=1 PYTHONPATH=<tree> python
bench/_grid_worker.py SPEC.json WORK RUNS` (bench/_before.py) times that tree's product on
the same spec and prints one JSON list of trials per minute.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def submit_in_process(home: Path, spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    """*spec* submitted to a new SQLite file under *home*: the database, the study, and the
    options of one in-process worker that trains it and exits when the queue is empty (a
    poll wait not worth the name, so the timing is the product's, not the poll's)."""
    from studies import store
    from studies.db import Database
    from studies.schema_setup import create_schema
    from studies.spec import parse_spec
    from studies.worker import WorkerOptions

    home.mkdir(parents=True)
    db = Database(f"sqlite:///{home / 'sweepdoc.db'}")
    create_schema(db)
    study = store.submit_study(db, parse_spec(spec), artifacts_dir=home / "artifacts")
    options = WorkerOptions(
        database_url=db.url,
        data_dir=home,
        artifacts_dir=home / "artifacts",
        exit_when_idle=True,
        poll_interval_s=0.05,
    )
    return db, study, options


def trials_per_minute(home: Path, spec: dict[str, Any]) -> float:
    """*spec* trained by a real worker in this process; its trials per minute from the first
    claim to the last finish (as stored). Exits naming the states if a trial did not finish."""
    from studies import store
    from studies.optuna_bridge import close_storages
    from studies.worker import run_worker

    db, study, options = submit_in_process(home, spec)
    run_worker(options)
    trials = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
    db.dispose()
    close_storages()  # the next study opens its own database: no cached storage kept
    starts = [t.claimed_at for t in trials if t.claimed_at is not None]
    ends = [t.finished_at for t in trials if t.finished_at is not None]
    if len(ends) != len(trials):
        raise SystemExit(f"a trial did not finish: {[t.state for t in trials]}")
    return round(len(trials) * 60.0 / (max(ends) - min(starts)).total_seconds(), 2)


def main() -> None:
    """SPEC.json WORK RUNS [WARM_SPEC.json]: one untimed warm-up study (WARM_SPEC, else SPEC;
    the first trial in a process pays the dataset's decoding and one-off imports), then
    RUNS timed studies of SPEC under WORK; prints their trials per minute as a JSON list."""
    if len(sys.argv) not in (4, 5):
        raise SystemExit("usage: _grid_worker.py SPEC.json WORK RUNS [WARM_SPEC.json]")
    spec = json.loads(Path(sys.argv[1]).read_text())
    work, runs = Path(sys.argv[2]), int(sys.argv[3])
    warm = json.loads(Path(sys.argv[4]).read_text()) if len(sys.argv) == 5 else spec

    from trainer import warm_up

    warm_up()  # torch's one-off import cost, outside every timing
    trials_per_minute(work / "warm-up", warm)
    rates = [trials_per_minute(work / f"run-{index}", spec) for index in range(runs)]
    print(json.dumps(rates), flush=True)


if __name__ == "__main__":
    main()
