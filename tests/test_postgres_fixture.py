"""The PostgreSQL the suite starts is real, and every test gets its own empty database."""

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_each_test_gets_an_empty_database_of_its_own(postgres_url: str) -> None:
    with psycopg.connect(_plain(postgres_url)) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE probe (id int)")
        version = conn.execute("SHOW server_version").fetchone()
    assert tables == (0,)
    assert version is not None and int(str(version[0]).split(".")[0]) >= 13


def test_the_server_accepts_the_connections_many_workers_need(postgres_server: str) -> None:
    with psycopg.connect(_plain(postgres_server)) as conn:
        row = conn.execute("SHOW max_connections").fetchone()
    assert row is not None and int(row[0]) >= 100
