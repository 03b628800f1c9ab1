"""Liveness and readiness probes (outside /v1: they describe the server, not the API)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from service.api.deps import RawDatabaseDep, SchemaGuard, SettingsDep
from studies.schemas import Readiness
from studies.store import database_unreachable, readiness

logger = logging.getLogger(__name__)

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process answers HTTP."""

    status: str = "ok"


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """Always 200 while the process serves requests; says nothing about the database."""
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready; `reason` says why"}},
)
def readyz(
    request: Request, database: RawDatabaseDep, settings: SettingsDep
) -> Readiness | JSONResponse:
    """200 when the database answers and a worker beat recently (or, with
    SWEEPDOC_READY_REQUIRES_WORKER=false, when the database answers); 503 otherwise, saying
    which."""
    window = settings.ready_worker_window_s
    guard: SchemaGuard = request.app.state.schema_guard
    try:
        guard.ensure()
        state = readiness(
            database, worker_window_s=window, requires_worker=settings.ready_requires_worker
        )
    except SQLAlchemyError as exc:
        logger.warning("readiness check: database error: %s", exc)
        state = database_unreachable(worker_window_s=window)
    if not getattr(request.state, "authorized", True):
        # With a token set, anyone may probe readiness but only its holders see the workers
        # (their host names and pids).
        state = state.model_copy(update={"workers": []})
    if state.ready:
        return state
    return JSONResponse(status_code=503, content=state.model_dump(mode="json"))
