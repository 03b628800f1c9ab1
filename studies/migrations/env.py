"""Alembic environment of sweepdoc's migrations (see ``studies/migrations/__init__.py``).

``studies.schema_setup.create_schema(db)`` passes its connection in
``config.attributes["connection"]`` and owns the transaction; the ``alembic`` command line
(developers) gives a URL instead: ``alembic -c studies/migrations/alembic.ini -x url=… <command>``.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

from studies.db import Base
from studies.migrations import VERSION_TABLE, include_name


def _render_item(type_: str, obj: Any, _context: Any) -> str | Literal[False]:
    """Migrations spell sweepdoc's column types as the plain types they store."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        render_item=_render_item,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise SystemExit("sweepdoc's migrations run online only (give -x url=…)")
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("give the database: alembic -c studies/migrations/alembic.ini -x url=…")
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


_main()
