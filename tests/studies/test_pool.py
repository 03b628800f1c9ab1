"""A process's connections to PostgreSQL are capped by its pool: two engines (sweepdoc's and
Optuna's), each at most ``PoolOptions.size``, however many threads use them at once."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from studies import store
from studies.db import Database, PoolOptions, configure_pool, engine_kwargs
from studies.optuna_bridge import close_storages, optuna_storage
from studies.schema_setup import create_schema
from studies.spec import parse_spec
from tests.scale.harness import ConnectionSampler
from tests.studies.conftest import tiny_spec

pytestmark = pytest.mark.postgres


@pytest.fixture
def pooled_url(postgres_url: str) -> Iterator[str]:
    configure_pool(postgres_url, PoolOptions(size=1, application_name="sweepdoc-pooltest p1"))
    yield postgres_url
    close_storages()


def test_sixteen_threads_share_one_connection_per_engine(pooled_url: str, tmp_path: Path) -> None:
    db = Database(pooled_url)
    try:
        create_schema(db)
        with ConnectionSampler(pooled_url, interval_s=0.02) as sampler:

            def submit_and_read(i: int) -> int:
                study = store.submit_study(
                    db,
                    parse_spec(tiny_spec(name=f"s{i}", search={"grid": [0.1, 0.01]})),
                    artifacts_dir=tmp_path / "artifacts",
                )
                return len(store.list_trials(db, store.get_study(db, study.id).id).data)

            with ThreadPoolExecutor(16) as pool:
                counts = list(pool.map(submit_and_read, range(32)))
        assert counts == [2] * 32
    finally:
        db.dispose()
    # Both engines were used (sweepdoc's rows, Optuna's studies) and neither exceeded one.
    assert sampler.peak_per_process == {"sweepdoc-pooltest p1": 2}
    with psycopg.connect(pooled_url.replace("+psycopg", "")) as conn:
        names = sorted(
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT application_name FROM pg_stat_activity "
                "WHERE application_name LIKE 'sweepdoc-pooltest%'"
            )
        )
    assert names == ["sweepdoc-pooltest p1 optuna"]  # sweepdoc's disposed; Optuna's still open
    assert optuna_storage(pooled_url).engine.pool.size() == 1


def test_pool_options_are_validated_and_sqlite_ignores_them() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        PoolOptions(size=0)
    with pytest.raises(ValueError, match="positive"):
        PoolOptions(timeout_s=0)
    assert "pool_size" not in engine_kwargs("sqlite:///x.db", role="sweepdoc")
    kwargs = engine_kwargs("postgresql+psycopg://u@h/db", role="optuna")
    assert (kwargs["pool_size"], kwargs["max_overflow"]) == (2, 0)
    assert kwargs["connect_args"]["application_name"] == "sweepdoc optuna"
