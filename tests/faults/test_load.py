"""200 concurrent clients read study, trial and diagnosis endpoints of a real `sweepdoc serve`
(SQLite) while its 2 workers train: every request answers 200, and the workers keep
training. Latencies and throughput are printed (bench/load_api.py measures them and writes
them to bench/results/), never asserted: how fast two busy cores serve is the benchmark's
to report, not a test's to require."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.load import load_while_training
from tests.service.serve_process import ServeProcess, serving

pytestmark = pytest.mark.slow

CLIENTS = 200
REQUESTS = 3000


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", workers=2)
    with serving(server, workers=2):
        yield server


def test_200_concurrent_readers_while_two_workers_train_get_no_error(
    served: ServeProcess,
) -> None:
    result, busy = load_while_training(
        served, clients=CLIENTS, total_requests=REQUESTS, max_wall_s=None
    )
    print("\nload:", json.dumps(result.summary(), indent=1))

    assert result.failures == []
    assert dict(result.statuses) == {200: result.requests}
    assert result.requests == REQUESTS  # every request was sent and answered
    assert len(result.first_ms) == CLIENTS  # every client connected and was answered
    assert set(result.latencies_ms) == {
        "studies",
        "study",
        "trials",
        "study_diagnosis",
        "trial",
        "trial_diagnosis",
    }
    # The workers trained on under the load: epochs were recorded during it.
    assert sum(t["epochs_done"] for t in busy["trials"]) >= 2
    assert served.stop() == 0, served.log()
    log = served.log()
    assert "Traceback" not in log and "database is locked" not in log
