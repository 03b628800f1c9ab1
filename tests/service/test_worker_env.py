"""A local worker started from service.server.worker_env reads the server's own settings back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from service.server import worker_env
from service.settings import Settings

# The server's worker timings and the limits a follow-up round must fit, none of them a
# default: a worker that is not handed one reads the default back, and the test fails.
TIMINGS_AND_LIMITS: dict[str, Any] = {
    "worker_poll_interval_s": 0.25,
    "worker_heartbeat_interval_s": 2.5,
    "worker_stale_after_s": 40.0,
    "max_trials_per_study": 7,
    "max_epochs": 9,
    "max_queued_studies": 3,
}


def _as_used(settings: Settings) -> dict[str, Any]:
    """Every setting, the database and the data folder as resolved (what a process uses)."""
    return {
        **settings.model_dump(),
        "database_url": settings.resolved_database_url,
        "data_dir": settings.resolved_data_dir,
    }


@pytest.mark.parametrize("explicit_paths", [True, False], ids=["explicit paths", "under home"])
def test_a_worker_reads_back_its_servers_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, explicit_paths: bool
) -> None:
    prefix = Settings.model_config["env_prefix"]
    for key in [key for key in os.environ if key.upper().startswith(prefix)]:
        monkeypatch.delenv(key)  # only what worker_env writes may reach the worker
    for name, value in TIMINGS_AND_LIMITS.items():
        assert value != Settings.model_fields[name].default, name  # else nothing is tested
    # Built in code, as the demo and the tests build theirs: nothing of it is in os.environ.
    server = Settings(
        home=tmp_path / "server-home",
        database_url=f"sqlite:///{tmp_path / 'elsewhere.db'}" if explicit_paths else None,
        data_dir=tmp_path / "data" if explicit_paths else None,
        **TIMINGS_AND_LIMITS,
    )
    for key, value in worker_env(server).items():
        monkeypatch.setenv(key, value)
    worker = Settings()  # what `sweepdoc worker` reads, started with that environment
    assert _as_used(worker) == _as_used(server)
