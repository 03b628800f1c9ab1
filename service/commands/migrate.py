"""`sweepdoc migrate`: bring the database's schema up to date, then exit.

`serve` and every worker do the same at start-up (idempotent, under a lock), so this command
is never required; it exists for deployments that migrate as a step of their own before
rolling out new processes (deploy/k8s runs it as a Job), where a migration that fails should
fail once, visibly, with an exit status, rather than in every pod's start-up.
"""

from __future__ import annotations

import typer
from rich.console import Console

from service.settings import get_settings, redact_url
from studies import migrations
from studies.db import Database, configure_pool
from studies.schema_setup import create_schema


def migrate() -> None:
    """Create or upgrade the schema of SWEEPDOC_DATABASE_URL (sweepdoc's and Optuna's
    tables), then exit: 0 when it is up to date, 1 when it cannot be."""
    console = Console(stderr=True)
    settings = get_settings()
    settings.make_dirs()
    url = settings.resolved_database_url
    # One connection is all a migration takes (Optuna's start-up opens its own, unpooled).
    configure_pool(url, settings.db_pool("migrate", size=1))
    database = Database(url)
    try:
        with database.engine.connect() as conn:
            before = migrations.current_revision(conn)
        create_schema(database)
        with database.engine.connect() as conn:
            after = migrations.current_revision(conn)
    except Exception as exc:  # driver and migration errors alike: one line, never the URL
        console.print(
            f"[red]error:[/] cannot migrate {redact_url(url)} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0]}). Check "
            "SWEEPDOC_DATABASE_URL and that the database server is running.",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    finally:
        database.dispose()
    change = "already at" if before == after else f"migrated from {before or 'empty'} to"
    console.print(f"{redact_url(url)}: {change} revision {after}", highlight=False)
