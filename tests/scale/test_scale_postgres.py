"""8 `sweepdoc worker` processes on one real PostgreSQL: a 40-trial study runs every trial
exactly once (in sweepdoc's queue and in Optuna), with no error and within each process's
connection budget; the throughput is printed next to one worker's on the same study.

About 3 minutes on a 2-core machine (both runs, worker start-up included). The same
measurement, as a table and a JSON file: ``bench/scale_workers.py``.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState as OptunaState

from service.settings import Settings
from studies import store
from studies.db import Database, TrialState
from studies.optuna_bridge import close_storages
from tests.postgres_server import create_database
from tests.scale.harness import ScaleRun, run_workers, tiny_grid_spec

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TRIALS = 40
WORKERS = 8
# PostgreSQL's default max_connections, less its superuser_reserved_connections.
DEFAULT_MAX_CONNECTIONS = 100 - 3


def _check_exactly_once(url: str, run: ScaleRun) -> None:
    assert run.exit_codes == [0] * run.workers, run.logs[-5000:]
    for needle in (
        "too many connections",
        "QueuePool limit",
        "Traceback",
        "database unavailable",
        "heartbeat failed",
    ):
        assert needle not in run.logs, run.logs[-5000:]
    grid = tiny_grid_spec(run.trials, max_parallel=run.workers)["search"]["grid"]
    db = Database(url)
    try:
        study = store.get_study(db, run.study_id)
        trials = [store.get_trial(db, t.id) for t in store.list_trials(db, run.study_id).data]
    finally:
        db.dispose()
    assert sorted(t.params["lr"] for t in trials) == sorted(grid)
    for trial in trials:
        assert trial.state is TrialState.COMPLETE, trial.error
        assert trial.attempt == 1 and [a.state for a in trial.attempts] == [TrialState.COMPLETE]
    assert len({t.worker for t in trials}) > 1 or run.workers == 1

    storage = optuna.storages.RDBStorage(url)
    try:
        frozen = optuna.load_study(study_name=study.optuna_study_name, storage=storage).trials
    finally:
        storage.engine.dispose()
    assert len(frozen) == run.trials
    assert all(t.state == OptunaState.COMPLETE for t in frozen)
    assert sorted(t.params["lr"] for t in frozen) == pytest.approx(sorted(grid))
    assert {t.number for t in frozen} == {t.optuna_trial_number for t in trials}


def test_eight_workers_run_a_40_trial_study_exactly_once_within_the_connection_budget(
    postgres_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings()
    per_worker = 2 * settings.worker_db_pool_size  # sweepdoc's engine + Optuna's
    # The documented budget: 32 workers and the API fit PostgreSQL's default.
    assert 32 * per_worker + 2 * settings.api_db_pool_size <= DEFAULT_MAX_CONNECTIONS

    runs = []
    for workers in (1, WORKERS):
        url = create_database(postgres_server)
        run = run_workers(url, workers=workers, trials=TRIALS, home=tmp_path / f"w{workers}")
        _check_exactly_once(url, run)
        assert 0 < run.peak_per_worker <= per_worker, run.row()
        assert run.peak_connections <= workers * per_worker, run.row()
        runs.append(run)
        close_storages()

    with capsys.disabled():
        print(f"\nscale test: {TRIALS} tiny trials on PostgreSQL")
        for run in runs:
            print(
                f"  {run.workers} worker(s): {run.trials_per_minute:6.1f} trials/min "
                f"(first claim to last finish {run.active_s:.1f} s; wall {run.wall_s:.1f} s "
                f"with start-up); peak connections {run.peak_connections} "
                f"({run.peak_per_worker} per worker)"
            )
    assert all(run.trials_per_minute > 0 for run in runs)
