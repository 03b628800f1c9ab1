"""A local worker started from service.server.worker_env reads the server's own settings back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from service.server import worker_env
from service.settings import Settings

# What a worker reads (service/commands/worker.py) that must be its server's, each as the
# server holds it; the server's values below differ from every default, so a variable that
# worker_env drops or misnames reads back as a default and fails here.
READ_BACK = (
    "home",
    "resolved_database_url",
    "resolved_data_dir",
    "worker_poll_interval_s",
    "worker_heartbeat_interval_s",
    "worker_stale_after_s",
    "max_trials_per_study",
    "max_epochs",
    "max_queued_studies",
)
TIMINGS_AND_LIMITS: dict[str, Any] = {
    "worker_poll_interval_s": 0.25,
    "worker_heartbeat_interval_s": 2.5,
    "worker_stale_after_s": 40.0,
    "max_trials_per_study": 7,
    "max_epochs": 9,
    "max_queued_studies": 3,
}


def _server_settings(tmp_path: Path, *, explicit_paths: bool) -> Settings:
    """Settings built in code, as the demo and the tests build them: not in the environment."""
    paths: dict[str, Any] = (
        {"database_url": f"sqlite:///{tmp_path / 'elsewhere.db'}", "data_dir": tmp_path / "data"}
        if explicit_paths
        else {"database_url": None, "data_dir": None}  # resolved under home
    )
    return Settings(home=tmp_path / "server-home", **paths, **TIMINGS_AND_LIMITS)


@pytest.mark.parametrize("explicit_paths", [True, False], ids=["explicit paths", "under home"])
def test_a_worker_reads_back_its_servers_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, explicit_paths: bool
) -> None:
    server = _server_settings(tmp_path, explicit_paths=explicit_paths)
    for name, value in TIMINGS_AND_LIMITS.items():
        assert value != Settings.model_fields[name].default, name  # else nothing is tested
    prefix = Settings.model_config["env_prefix"]
    for key in [key for key in os.environ if key.upper().startswith(prefix)]:
        monkeypatch.delenv(key)  # only what worker_env writes may reach the worker
    env = worker_env(server)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    worker = Settings()  # what `sweepdoc worker` reads, started with *env*
    assert {name: getattr(worker, name) for name in READ_BACK} == {
        name: getattr(server, name) for name in READ_BACK
    }
