"""The default study through the real queue: wall time, per-trial overhead, labels.

Submits ``studies/examples/digits-lr-grid.yaml`` (or FILE) to a fresh SQLite database (or
``--database-url``) and runs it with N worker processes, exactly as ``sweepdoc worker``
does (claim, train, per-epoch writes, Optuna reports, diagnosis, note, plot artifact). Prints
the wall time of the whole grid, the training time the trainer itself measured, the
difference (the queue's and the worker's overhead), and each trial's label.

    .venv/bin/python bench/queue_grid.py [FILE] [--workers 1] [--database-url URL]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from studies import store
from studies.db import Database
from studies.schema_setup import create_schema
from studies.spec import default_grid_spec_path, load_spec_file
from studies.worker import WorkerOptions

_WORKER_MAIN = (
    "import sys\n"
    "from studies.worker import WorkerOptions, run_worker\n"
    "run_worker(WorkerOptions.model_validate_json(sys.argv[1]))\n"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=default_grid_spec_path())
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        url = args.database_url or f"sqlite:///{home / 'bench.db'}"
        db = Database(url)
        create_schema(db)
        study = store.submit_study(db, load_spec_file(args.file), artifacts_dir=home / "artifacts")
        start = time.perf_counter()
        procs = []
        for index in range(args.workers):
            options = WorkerOptions(
                database_url=url,
                data_dir=home / "data",
                artifacts_dir=home / "artifacts",
                name=f"bench-{index}",
                poll_interval_s=0.2,
                exit_when_idle=True,
                torch_threads=1,
            )
            procs.append(
                subprocess.Popen([sys.executable, "-c", _WORKER_MAIN, options.model_dump_json()])
            )
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - start
        trials = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
        train_s = sum(sum(e.get("seconds") or 0.0 for e in t.epochs) for t in trials)
        print(f"{args.file.name}: {len(trials)} trials, {args.workers} worker(s), exit {codes}")
        print(f"wall {wall:.1f} s (worker start-up included); training {train_s:.1f} s")
        for t in trials:
            print(
                f"  lr {t.params.get('lr', float('nan')):g}: {t.state.value:9s} "
                f"{t.label or '-':13s} best val acc {t.best_val_acc or 0:.3f} "
                f"epochs {t.epochs_done} duration {t.duration_s or 0:.1f} s"
            )
        db.dispose()


if __name__ == "__main__":
    main()
