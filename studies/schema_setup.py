"""Bring a database's schema up to date: sweepdoc's tables migrated, Optuna's created.

Its own module, above ``studies.db`` (the ORM and engines), ``studies.migrations`` (which
diffs against the ORM) and ``studies.optuna_bridge`` (which borrows the engine options), so
none of those has to import another inside a function to dodge an import cycle.
"""

from __future__ import annotations

import time

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError

from studies import migrations
from studies.db import Database
from studies.optuna_bridge import optuna_storage

__all__ = ["create_schema"]

# Retries a few "already exists" races when several processes create Optuna's tables at once
# on SQLite (Optuna creates them on its own connections, outside sweepdoc's lock).
_OPTUNA_SCHEMA_ATTEMPTS = 5
# Arbitrary constant key of the PostgreSQL advisory lock that serializes schema creation.
_SCHEMA_LOCK_KEY = 0x5D0C_5C4E


def create_schema(db: Database) -> None:
    """Migrate sweepdoc's tables to the newest revision and create Optuna's.

    Idempotent, and safe when several processes start at once: on PostgreSQL an advisory
    lock held until commit serializes them; on SQLite the migration runs inside
    ``BEGIN IMMEDIATE``, under the file's write lock, which the others wait for (busy
    timeout). A database made before sweepdoc had migrations is adopted (stamped at the
    baseline revision, rows untouched). Migrations run in one transaction on both (their
    DDL is transactional), so a failed one leaves the schema as it was.
    """
    with db.engine.connect() as conn:
        if db.is_postgres:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        migrations.upgrade(conn)
        if db.is_postgres:
            # Still under the lock: Optuna's own table creation races when unserialized.
            optuna_storage(db.url)
        conn.commit()
    if not db.is_postgres:
        # After the commit: Optuna writes through its own connections, which would wait
        # for the write lock this one held.
        _create_optuna_schema(db.url)


def _create_optuna_schema(url: str) -> None:
    for attempt in range(_OPTUNA_SCHEMA_ATTEMPTS):
        try:
            optuna_storage(url)
            return
        except (OperationalError, IntegrityError):
            if attempt == _OPTUNA_SCHEMA_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
