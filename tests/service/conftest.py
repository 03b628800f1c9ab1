"""Fixtures of the service tests: an in-process app on a real SQLite file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings


@pytest.fixture(autouse=True, scope="session")
def testclient_host() -> Iterator[None]:
    """Let the in-process app answer Starlette's TestClient, which names `testserver` as its
    Host (a real server only answers its own names; see service/api/hosts.py). Session-wide,
    so module-scoped apps get it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SWEEPDOC_ALLOWED_HOSTS", "testserver")
        yield


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings of a throwaway deployment under *tmp_path* (SQLite file, artifacts)."""
    return Settings(home=tmp_path / "home", database_url=None, api_token=None)


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    """The real app, served in-process, on a real SQLite file."""
    with TestClient(create_app(settings)) as client:
        yield client
