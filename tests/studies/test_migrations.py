"""sweepdoc's schema migrations: upgrade from empty, adopt a pre-migration database, many
processes at once, Optuna's own Alembic history untouched, models and migrations in step."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, inspect, text

from studies import migrations, store
from studies.db import DEFAULT_STALE_AFTER_S, Base, Database
from studies.optuna_bridge import close_storages, optuna_storage
from studies.schema_setup import create_schema
from studies.spec import parse_spec
from tests.studies.conftest import disposed, tiny_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fresh_url(db_url: str) -> Iterator[str]:
    """An empty database (SQLite file or PostgreSQL), nothing created yet."""
    yield db_url
    close_storages()


def _tables(url: str) -> set[str]:
    with disposed(create_engine(url)) as engine:
        return set(inspect(engine).get_table_names())


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with disposed(create_engine(url)) as engine, engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def _schema(engine: Engine) -> dict[str, Any]:
    """Everything about sweepdoc's tables a migration could get wrong, comparable."""
    inspector = inspect(engine)
    described: dict[str, Any] = {}
    for table in sorted(migrations.BASELINE_TABLES):
        described[table] = {
            "columns": [
                (c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)
            ],
            "pk": inspector.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted(
                (tuple(fk["constrained_columns"]), fk["referred_table"])
                for fk in inspector.get_foreign_keys(table)
            ),
            "unique": sorted(
                tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)
            ),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]))
                for i in inspector.get_indexes(table)
            ),
        }
    return described


def migrate_and_check_head(db: Database) -> None:
    """Migrate *db*; it must then be at the newest revision, with tables equal to the models."""
    create_schema(db)
    with db.engine.connect() as conn:
        assert migrations.current_revision(conn) == migrations.head_revision()
        assert migrations.model_differences(conn) == []


def test_an_empty_database_is_migrated_to_head(fresh_url: str) -> None:
    with disposed(Database(fresh_url)) as db:
        migrate_and_check_head(db)
    tables = _tables(fresh_url)
    assert tables >= migrations.BASELINE_TABLES
    assert {migrations.VERSION_TABLE, "alembic_version", "studies", "trials"} <= tables
    assert _rows(fresh_url, f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [
        (migrations.head_revision(),)
    ]


def _upgrade_to(conn: Connection, revision: str) -> None:
    """Run sweepdoc's migrations on *conn* up to *revision* (an older schema than head)."""
    config = Config()
    config.set_main_option("script_location", str(ROOT / "studies" / "migrations"))
    config.attributes["connection"] = conn
    command.upgrade(config, revision)


def _baseline_schema(url: str) -> None:
    """What sweepdoc's ``create_all`` made before it had migrations: the baseline revision's
    tables (by definition the same schema), without the version table."""
    with disposed(create_engine(url)) as engine, engine.begin() as conn:
        _upgrade_to(conn, migrations.BASELINE)
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))


def test_the_migrations_make_what_create_all_makes(db_url: str, tmp_path: Path) -> None:
    """The migrations at head and the models describe the same schema."""
    migrated = Database(db_url)
    create_schema(migrated)
    if db_url.startswith("sqlite"):
        other_url = f"sqlite:///{tmp_path / 'create_all.db'}"
    else:
        from tests.postgres_server import create_database

        other_url = create_database(db_url.rsplit("/", 1)[0] + "/postgres")
    created = create_engine(other_url)
    try:
        Base.metadata.create_all(created)
        assert _schema(migrated.engine) == _schema(created)
    finally:
        created.dispose()
        migrated.dispose()
        close_storages()


def test_optuna_keeps_its_own_alembic_version(fresh_url: str) -> None:
    # Optuna first, as a database shared with an existing Optuna deployment would be.
    optuna_storage(fresh_url)
    close_storages()
    optuna_before = _rows(fresh_url, "SELECT version_num FROM alembic_version")
    assert optuna_before and optuna_before[0][0] != migrations.head_revision()

    with disposed(Database(fresh_url)) as db:
        create_schema(db)
        create_schema(db)
    assert _rows(fresh_url, "SELECT version_num FROM alembic_version") == optuna_before
    assert _rows(fresh_url, f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [
        (migrations.head_revision(),)
    ]


def test_a_database_made_by_create_all_is_adopted_without_losing_rows(
    fresh_url: str, tmp_path: Path
) -> None:
    """What sweepdoc before migrations left behind: its tables, Optuna's, and data."""
    _baseline_schema(fresh_url)
    optuna_storage(fresh_url)  # the old create_schema made Optuna's tables too
    close_storages()
    # Rows as that sweepdoc wrote them, in the baseline's columns (today's models have more).
    spec = parse_spec(tiny_spec(search={"grid": [0.1, 0.01, 0.001]})).model_dump_json()
    with disposed(create_engine(fresh_url)) as engine, engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO sweepdoc_studies (id, name, optuna_study_name, spec, priority,"
                " max_parallel, trial_count, cancel_requested, created_at) VALUES (1,"
                " 'old', 'sweepdoc-1-old', :spec, 0, 1, 3, false, '2026-11-01 10:00:00')"
            ),
            {"spec": spec},
        )
        for number, lr in enumerate((0.1, 0.01, 0.001)):
            conn.execute(
                text(
                    "INSERT INTO sweepdoc_trials (study_id, number, state, params, attempt,"
                    " epochs_done) VALUES (1, :number, 'waiting', :params, 0, 0)"
                ),
                {"number": number, "params": f'{{"lr": {lr}}}'},
            )
    assert migrations.VERSION_TABLE not in _tables(fresh_url)

    with disposed(Database(fresh_url)) as db:
        migrate_and_check_head(db)
        adopted = store.get_study(db, 1)
        assert adopted.name == "old" and adopted.trial_count == 3
        assert sorted(t.params["lr"] for t in store.list_trials(db, 1).data) == [
            0.001, 0.01, 0.1
        ]
        # Revision 0002: the slots, made before it, carry the grace everyone assumed (30 s).
        assert _rows(fresh_url, "SELECT DISTINCT stale_after_s FROM sweepdoc_trials") == [
            (DEFAULT_STALE_AFTER_S,)
        ]


def test_a_partial_sweepdoc_schema_is_refused_not_guessed_at(fresh_url: str) -> None:
    with disposed(create_engine(fresh_url)) as engine:
        Base.metadata.tables["sweepdoc_studies"].create(engine)
    with (
        disposed(Database(fresh_url)) as db,
        pytest.raises(migrations.SchemaError, match="sweepdoc_trials"),
    ):
        create_schema(db)
    # Nothing was stamped or created: the transaction rolled back.
    assert _tables(fresh_url) == {"sweepdoc_studies"}


_CREATE_SCHEMA = (
    "import sys\n"
    "from studies.db import Database\n"
    "from studies.schema_setup import create_schema\n"
    "db = Database(sys.argv[1])\n"
    "create_schema(db)\n"
    "db.dispose()\n"
)


def test_four_processes_creating_the_schema_at_once(fresh_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CREATE_SCHEMA, fresh_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], "\n".join(outputs)
    assert _rows(fresh_url, f"SELECT version_num FROM {migrations.VERSION_TABLE}") == [
        (migrations.head_revision(),)
    ]
    assert len(_rows(fresh_url, "SELECT version_num FROM alembic_version")) == 1
    with disposed(Database(fresh_url)) as db, db.engine.connect() as conn:
        assert migrations.model_differences(conn) == []


def test_model_differences_sees_a_model_change(fresh_url: str) -> None:
    """The in-step check above can fail: a column the migrations lack is reported."""
    with disposed(Database(fresh_url)) as db:
        create_schema(db)
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE sweepdoc_workers ADD COLUMN extra INTEGER"))
            diff = migrations.model_differences(conn)
    # Only that column: Optuna's tables, which no model of sweepdoc's describes, are left out.
    assert [(d[0], d[2], d[3].name) for d in diff] == [
        ("remove_column", "sweepdoc_workers", "extra")
    ]


def test_the_migrations_ship_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("sweepdoc-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "studies/migrations/__init__.py",
        "studies/migrations/env.py",
        "studies/migrations/script.py.mako",
        "studies/migrations/versions/r0001_baseline.py",
        "studies/migrations/versions/r0002_worker_deadline.py",
        "studies/migrations/versions/r0005_chain_state.py",
    }
    assert expected <= names, sorted(n for n in names if "migrations" in n)


def test_revision_0005_sets_the_chain_state_of_existing_studies(fresh_url: str) -> None:
    """Studies made before 0005: without follow-up (off), follow-up on and undecided
    (open), decided by a reason or a linked next round (decided)."""
    with disposed(create_engine(fresh_url)) as engine, engine.begin() as conn:
        _upgrade_to(conn, "0004")
        rows = {
            1: ({}, None, None),
            2: ({"max_rounds": 2}, None, None),
            3: ({"max_rounds": 2}, "Round 2 submitted: …", 4),
            4: ({"max_rounds": 2}, "The loop is done.", None),
            5: ({"max_rounds": 0}, None, None),
        }
        for study_id, (follow_up, reason, follow_up_id) in rows.items():
            spec = parse_spec(tiny_spec(follow_up=follow_up)).model_dump_json()
            conn.execute(
                text(
                    "INSERT INTO sweepdoc_studies (id, name, optuna_study_name, spec,"
                    " priority, max_parallel, trial_count, cancel_requested, created_at,"
                    " round, chain_reason, follow_up_id) VALUES (:id, 's', :optuna, :spec,"
                    " 0, 1, 2, false, '2026-11-01 10:00:00', 1, :reason, :follow_up_id)"
                ),
                {"id": study_id, "optuna": f"s{study_id}", "spec": spec,
                 "reason": reason, "follow_up_id": follow_up_id},
            )
    with disposed(Database(fresh_url)) as db:
        migrate_and_check_head(db)
    assert _rows(fresh_url, "SELECT id, chain_state FROM sweepdoc_studies ORDER BY id") == [
        (1, "off"), (2, "open"), (3, "decided"), (4, "decided"), (5, "off")
    ]
