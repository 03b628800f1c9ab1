"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.postgres_server import (
    PostgresUnavailable,
    create_database,
    running_postgres,
    skip_unless_ci,
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server for the session (superuser URL).

    In CI (CI=true) a missing server is an error, never a skip: the PostgreSQL tests are part
    of what CI must prove.
    """
    try:
        with running_postgres() as url:
            yield url
    except PostgresUnavailable as exc:
        skip_unless_ci(exc, str(exc))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return create_database(postgres_server)
