"""PostgreSQL goes away for about 10 s while a worker trains: nothing is lost.

A real `sweepdoc serve` (API + one local worker) on a PostgreSQL server of the test's own,
stopped with `pg_ctl stop -m fast` (every connection cut) while a trial is mid-run and started
again 10 s later. Meanwhile `/readyz` answers 503 naming the database and the API answers
503 JSON (never 500); afterwards both recover, the worker's blocked epoch write goes
through, and the trial completes with every epoch recorded exactly once, in its first
attempt.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from studies.db import Database, EpochRow
from tests.faults.postgres_control import PostgresServer, stoppable_postgres
from tests.postgres_server import PostgresUnavailable, create_database, skip_unless_ci
from tests.service.factory import tiny_spec
from tests.service.serve_process import ServeProcess, serving

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

OUTAGE_S = 10.0
EPOCHS = 30
# The default heartbeat grace (30 s): an outage shorter than it must cost nothing.
OUTAGE_ENV = {
    "SWEEPDOC_WORKER_HEARTBEAT_INTERVAL_S": "1",
    "SWEEPDOC_WORKER_STALE_AFTER_S": "30",
}


@pytest.fixture
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own, to stop and start, also where
    SWEEPDOC_TEST_POSTGRES_URL names a server for the suite: that one is shared with every
    other test and never stopped. Only a machine without the server binaries cannot run it
    (a skip that says so; an error in CI, like every PostgreSQL test)."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(stoppable_postgres())
        except PostgresUnavailable as exc:
            skip_unless_ci(
                exc,
                "this test stops and restarts PostgreSQL, so it runs a server of its own "
                f"and needs the server binaries, which are missing: {exc}"
            )
        yield server


@pytest.fixture
def served(pg: PostgresServer, tmp_path: Path) -> Iterator[ServeProcess]:
    server = ServeProcess(
        tmp_path, database_url=create_database(pg.url), workers=1, env_overrides=OUTAGE_ENV
    )
    with serving(server, workers=1):
        yield server


def test_a_database_outage_costs_no_epoch_and_the_api_answers_503_meanwhile(
    pg: PostgresServer, served: ServeProcess
) -> None:
    study = served.http.post("/v1/studies", json=tiny_spec("outage", grid=(0.05,), epochs=EPOCHS))
    assert study.status_code == 201, study.text
    study_id = study.json()["id"]
    trial = _running_after_one_epoch(served, study_id)

    pg.stop()
    down_at = time.monotonic()
    seen: list[tuple[str, int, dict[str, Any]]] = []
    while time.monotonic() - down_at < OUTAGE_S:
        for method, path in (
            ("GET", "/readyz"),
            ("GET", f"/v1/studies/{study_id}"),
            ("GET", f"/v1/trials/{trial['id']}"),
            ("POST", "/v1/studies"),
        ):
            body = tiny_spec("during-outage") if method == "POST" else None
            response = served.http.request(method, path, json=body)
            seen.append((path, response.status_code, response.json()))
        time.sleep(1.0)
    pg.start()

    for path, status, body in seen:
        assert status == 503, (path, status, body)
        if path == "/readyz":
            assert body["ready"] is False and body["database"] is False
            assert "database" in body["reason"]
        else:
            assert body["code"] == "database_unavailable", body
    assert _eventually_ready(served), served.log()

    finished = served.wait_for_study(study_id, timeout_s=240)
    assert finished["status"] == "completed", finished
    detail = served.get(f"/v1/trials/{trial['id']}")
    assert detail["state"] == "complete"
    assert detail["attempt"] == 1, "the outage cost the trial its attempt"
    assert detail["epochs_done"] == EPOCHS
    assert len(detail["curves"]["val_acc"]) == EPOCHS
    db = Database(served.database_url)
    try:
        with db.session() as session:
            epochs = session.scalars(
                select(EpochRow.epoch)
                .where(EpochRow.trial_id == trial["id"], EpochRow.attempt == 1)
                .order_by(EpochRow.epoch)
            ).all()
    finally:
        db.dispose()
    assert list(epochs) == list(range(1, EPOCHS + 1))  # every epoch, once, none lost
    log = served.log()
    assert "database error" in log  # the worker did meet the outage and retried
    assert "Traceback" not in log


def _running_after_one_epoch(server: ServeProcess, study_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for trial in server.get(f"/v1/studies/{study_id}/trials")["data"]:
            if trial["state"] == "running" and 1 <= trial["epochs_done"] < EPOCHS - 2:
                return dict(trial)
        time.sleep(0.1)
    raise AssertionError(f"no trial got past its first epoch:\n{server.log()}")


def _eventually_ready(server: ServeProcess, timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.http.get("/readyz").status_code == 200:
            return True
        time.sleep(0.5)
    return False
