"""Alembic migrations of sweepdoc's own tables (``sweepdoc_*``).

Optuna's RDB storage shares the database and keeps its own Alembic history in
``alembic_version``; sweepdoc's history lives in ``sweepdoc_alembic_version`` and every
migration touches ``sweepdoc_*`` tables only, so neither ever sees the other's revisions.

``studies.schema_setup.create_schema(db)`` calls :func:`upgrade` under a lock that
serializes processes starting at once. A database made before migrations existed (sweepdoc's
tables, no version table) is adopted: stamped at :data:`BASELINE`, which creates exactly
those tables, then upgraded like any other.

A new migration, after changing the models in ``studies.db``::

    alembic -c studies/migrations/alembic.ini -x url=sqlite:///dev.db upgrade head
    alembic -c studies/migrations/alembic.ini -x url=sqlite:///dev.db revision \\
        --autogenerate -m "what changed"

then read the generated file (autogenerate misses renames) and keep it under ``versions/``;
``tests/studies/test_migrations.py`` fails while the models and the migrations disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from studies.db import Base
from studies.errors import StudiesError

__all__ = [
    "BASELINE",
    "BASELINE_TABLES",
    "VERSION_TABLE",
    "SchemaError",
    "current_revision",
    "head_revision",
    "include_name",
    "model_differences",
    "upgrade",
]

# sweepdoc's Alembic version table; Optuna's is ``alembic_version``.
VERSION_TABLE = "sweepdoc_alembic_version"
# The first migration: the schema sweepdoc created with ``create_all`` before migrations.
BASELINE = "0001"
BASELINE_TABLES = frozenset(
    {
        "sweepdoc_studies",
        "sweepdoc_trials",
        "sweepdoc_epochs",
        "sweepdoc_attempts",
        "sweepdoc_workers",
    }
)
_HERE = Path(__file__).resolve().parent


class SchemaError(StudiesError):
    """The database's sweepdoc schema cannot be brought to this version's migrations."""


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    """Only sweepdoc's tables take part in autogenerate (Optuna's are not ours to diff)."""
    if type_ == "table":
        return name is not None and name.startswith("sweepdoc_") and name != VERSION_TABLE
    return True


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE))
    # env.py runs the migrations on this connection, inside the caller's transaction.
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this version of sweepdoc knows."""
    head = ScriptDirectory(str(_HERE)).get_current_head()
    assert head is not None, "studies/migrations/versions has no migration"
    return head


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at (None: sweepdoc's schema was never migrated)."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def upgrade(connection: Connection) -> None:
    """Adopt a pre-migration schema if there is one, then upgrade it to the head revision.

    Runs inside the caller's transaction on *connection* (the caller holds the lock that
    keeps other processes out and commits).
    """
    tables = set(inspect(connection).get_table_names())
    config = _config(connection)
    if VERSION_TABLE not in tables:
        ours = {t for t in tables if t.startswith("sweepdoc_")}
        if ours:
            missing = sorted(BASELINE_TABLES - ours)
            if missing:
                raise SchemaError(
                    f"the database has sweepdoc tables {sorted(ours)} but not {missing} and no "
                    f"{VERSION_TABLE} table; it was not made by sweepdoc's create_all, so it "
                    "cannot be adopted: restore it or point SWEEPDOC_DATABASE_URL elsewhere"
                )
            # Made by create_all before migrations existed: the baseline, row for row.
            command.stamp(config, BASELINE)
    try:
        command.upgrade(config, "head")
    except CommandError as exc:
        raise SchemaError(
            f"cannot migrate the database's sweepdoc tables to revision {head_revision()}: "
            f"{exc} (was it migrated by a newer sweepdoc?)"
        ) from exc


def model_differences(connection: Connection) -> list[Any]:
    """What autogenerate would change to make the database match the models ([] = none)."""
    context = MigrationContext.configure(
        connection,
        opts={
            "version_table": VERSION_TABLE,
            "include_name": include_name,
            "compare_type": True,
            "target_metadata": Base.metadata,
        },
    )
    return list(compare_metadata(context, Base.metadata))
