"""Dependencies the route handlers declare: the settings and the database of this app."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Path, Request

from service.settings import Settings
from studies.db import Database
from studies.schema_setup import create_schema
from studies.spec import SpecLimits

# Ids are sweepdoc's own integers; the bound keeps an absurd id a clear 422 instead of an
# integer overflow inside the database driver.
_MAX_ID = 2**31 - 1


class SchemaGuard:
    """Creates the schema on first use, so the server starts (and `/readyz` explains) while
    the database is still down; a failed attempt is retried by the next request."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._ready = False
        self._lock = threading.Lock()

    def ensure(self) -> None:
        if self._ready:
            return
        with self._lock:
            if not self._ready:
                create_schema(self._database)  # raises OperationalError → 503 while down
                self._ready = True


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_spec_limits(settings: Annotated[Settings, Depends(get_settings_dep)]) -> SpecLimits:
    """This server's limits on a study (submissions are checked against them, and a study's
    follow-up spec is planned within them)."""
    return settings.spec_limits


def get_database(request: Request) -> Database:
    """The app's database, its schema in place."""
    guard: SchemaGuard = request.app.state.schema_guard
    guard.ensure()
    database: Database = request.app.state.database
    return database


def get_raw_database(request: Request) -> Database:
    """The app's database as is (for probes that must answer while it is down)."""
    database: Database = request.app.state.database
    return database


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DatabaseDep = Annotated[Database, Depends(get_database)]
RawDatabaseDep = Annotated[Database, Depends(get_raw_database)]
SpecLimitsDep = Annotated[SpecLimits, Depends(get_spec_limits)]
StudyId = Annotated[int, Path(ge=1, le=_MAX_ID, description="sweepdoc's id of the study.")]
TrialId = Annotated[int, Path(ge=1, le=_MAX_ID, description="sweepdoc's id of the trial.")]
