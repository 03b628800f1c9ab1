"""The application factory: `/v1` API, health probes, OpenAPI at `/docs`, dashboard at `/`."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from starlette.routing import Mount

from service.api.auth import TokenAuth, token_check_for
from service.api.dashboard import dashboard_app
from service.api.deps import SchemaGuard
from service.api.errors import error_responses, install_error_handlers
from service.api.hosts import AllowedHosts
from service.api.limits import BodySizeLimit
from service.api.methods import ALL_METHODS, CATCH_ALL, MethodCheck
from service.api.methods import unknown_endpoint as unknown_v1_endpoint
from service.api.origin import CrossSiteGuard, JsonWrites
from service.api.ratelimit import RateLimit, rate_rules
from service.api.routers import diagnose, health, login, plugins, runs, studies, trials
from service.settings import Settings, get_settings
from studies import chain
from studies.db import Database
from studies.reconcile import reconcile
from studies.store import reap_stale_trials

logger = logging.getLogger(__name__)

API_DESCRIPTION = """\
Learning-rate search and training diagnosis for convolutional networks.

Submit a study (`POST /v1/studies`), watch its trials, read each trial's diagnosis
(`healthy`, `overfitting`, `underfitting`, `undertrained`, `diverged`) and the study's next
step. The Optuna dashboard is served by the same server at `/dashboard`.
"""


async def reap_forever(db: Database, guard: SchemaGuard, settings: Settings) -> None:
    """Fail and re-queue the trials of dead workers, several times per staleness period.

    Workers reap too (before each claim), but when every worker is dead only the server is
    left to notice; this bounds the time a killed worker's trial stays `running`.
    """
    period = max(0.5, settings.worker_stale_after_s / 4)
    while True:
        await asyncio.sleep(period)
        try:
            await anyio.to_thread.run_sync(guard.ensure)
            reaped = await anyio.to_thread.run_sync(lambda: reap_stale_trials(db))
        except Exception as exc:  # database down: try again next period, keep serving
            logger.warning("reaper: %s", exc)
            continue
        for item in reaped:
            logger.warning("reaped a trial of a dead worker: %s", item)


async def reconcile_forever(db: Database, guard: SchemaGuard, settings: Settings) -> None:
    """Bring Optuna's trial states in line with the queue's, twice per staleness period.

    Optuna is written after the queue's commits (reaper, cancel, a worker's finish) and such
    a write can be lost; nothing else retries it (see `studies.reconcile`).
    """
    period = max(1.0, settings.worker_stale_after_s / 2)
    chain_server = chain.ChainServer(
        limits=settings.spec_limits,
        data_root=settings.resolved_data_dir,
        artifacts_dir=settings.artifacts_dir,
        max_unfinished=settings.max_queued_studies,
    )
    while True:
        await asyncio.sleep(period)
        try:
            await anyio.to_thread.run_sync(guard.ensure)
            await anyio.to_thread.run_sync(
                lambda: reconcile(db, artifacts_dir=settings.artifacts_dir)
            )
            # Follow-up rounds a worker died before deciding (studies.chain).
            await anyio.to_thread.run_sync(lambda: chain.advance_all(db, server=chain_server))
        except Exception as exc:  # database down: try again next period, keep serving
            logger.warning("reconciler: %s", exc)


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the sweepdoc server for *settings* (default: the process settings).

    *database* lets a caller share an already open `Database`; otherwise the app opens one
    for the settings' URL and disposes of it at shutdown.
    """
    settings = settings if settings is not None else get_settings()
    owns_database = database is None
    db = database if database is not None else Database(settings.resolved_database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.make_dirs()
        settings.artifacts_dir.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=plugins.warm_up, name="plugins-warm-up", daemon=True).start()
        background = [
            asyncio.create_task(loop(db, app.state.schema_guard, settings))
            for loop in (reap_forever, reconcile_forever)
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if owns_database:
                db.dispose()

    app = FastAPI(
        title="sweepdoc",
        version="1",
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = db
    app.state.schema_guard = SchemaGuard(db)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(JsonWrites)  # inside the token check: 401 before 415
    token = settings.api_token.get_secret_value() if settings.api_token else None
    app.state.token_check = token_check_for(settings)
    if app.state.token_check is not None:
        # Added last, so it runs first: an unauthenticated body is never even read.
        app.add_middleware(
            TokenAuth, check=app.state.token_check, public_reads=settings.public_reads
        )
    # Before the token check: a client guessing tokens is slowed down, not just refused.
    app.add_middleware(RateLimit, rules=rate_rules(settings))
    # Outermost: a request for another host or from another site is refused before anything.
    app.add_middleware(CrossSiteGuard)
    # Outside the write checks: a method the path does not take is a 405 whatever it carries.
    app.add_middleware(MethodCheck)
    app.add_middleware(AllowedHosts, allowed=settings.allowed_hosts)

    # With a token, OpenAPI declares the bearer scheme and the 401 (enforced by TokenAuth;
    # the dependency only documents it and never refuses anything itself).
    secured: dict[str, Any] = (
        {
            "dependencies": [Depends(HTTPBearer(auto_error=False, scheme_name="token"))],
            "responses": error_responses(401),
        }
        if token
        else {}
    )
    app.include_router(health.router)
    app.include_router(login.router)
    app.include_router(studies.router, **secured)
    app.include_router(trials.router, **secured)
    app.include_router(diagnose.router, **secured)
    app.include_router(plugins.router, **secured)
    app.include_router(runs.router, **secured)

    @app.api_route(CATCH_ALL, methods=ALL_METHODS, include_in_schema=False)
    def unknown_endpoint(path: str, request: Request) -> JSONResponse:
        # Without this, unknown /v1 paths would fall through to the dashboard's HTML 404.
        return unknown_v1_endpoint(request)

    # Last: the dashboard answers every path the routes above did not claim (see dashboard.py).
    app.router.routes.append(
        Mount("/", app=dashboard_app(settings.resolved_database_url, settings.artifacts_dir))
    )
    return app
