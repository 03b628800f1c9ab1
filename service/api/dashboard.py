"""The Optuna dashboard, served by sweepdoc's own server on the same port.

Artifact uploads through the dashboard are turned off (`NoUploads`): sweepdoc's artifacts are
the curve plots its workers write, and an upload route would let any browser with the token
store files of any kind and any number on the server's disk, where no study limit, quota or
retention rule counts them. Viewing artifacts, and deleting them, stays as it was.

The dashboard cannot live under a sub-path (its page loads `/static/…` and calls `/api/…`,
`/artifacts/…`, `/csv/…` from the site root), so `create_app` mounts it at `/` *after* the
`/v1` routes. It reads the very Optuna storage the workers write, and the same artifact store
they upload curve plots to, so the dashboard shows exactly what the API shows.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import optuna_dashboard
from a2wsgi import WSGIMiddleware
from optuna.artifacts import FileSystemArtifactStore
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.raw_errors import send_json_error
from studies import store
from studies.db import Database
from studies.plots import LazyCurvesStore
from studies.store import optuna_storage

logger = logging.getLogger(__name__)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def artifact_store(artifacts_dir: Path, database: Database) -> FileSystemArtifactStore:
    """The Optuna artifact store the workers list curve plots in.

    Must match the worker's (`studies.optuna_bridge.annotate`): a file-system store rooted
    at the artifacts folder itself, or the dashboard would list plots it cannot open. A
    curves plot is rendered from the stored epochs the first time it is opened.
    """
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    return LazyCurvesStore(
        artifacts_dir, render=lambda trial_id: store.trial_curves_png(database, trial_id)
    )


class _LazyDashboard:
    """Builds the dashboard's WSGI app on its first request.

    Opening the Optuna storage connects to the database (and may migrate Optuna's tables);
    deferring it keeps the API starting, and `/readyz` answering, while the database is
    still down. A failed build is retried on the next request.
    """

    def __init__(self, database_url: str, artifacts_dir: Path) -> None:
        self._database_url = database_url
        self._artifacts_dir = artifacts_dir
        self._app: WSGIApp | None = None
        self._lock = threading.Lock()

    def _build(self) -> WSGIApp:
        with self._lock:
            if self._app is None:
                app: WSGIApp = optuna_dashboard.wsgi(
                    optuna_storage(self._database_url),
                    artifact_store=artifact_store(
                        self._artifacts_dir, Database(self._database_url)
                    ),
                )
                self._app = app
            return self._app

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        try:
            app = self._build()
        except Exception as exc:  # the database may be down: answer 503, retry next time
            logger.warning("the dashboard cannot open the Optuna storage: %s", exc)
            body = json.dumps(
                {
                    "code": "database_unavailable",
                    "message": "The dashboard cannot reach the database; retry in a few seconds.",
                    "errors": [],
                }
            ).encode()
            start_response(
                "503 Service Unavailable",
                [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return app(environ, start_response)


# The dashboard's upload routes: POST /api/artifacts/<study_id>[/<trial_id>].
UPLOAD_PREFIX = "/api/artifacts/"


class NoUploads:
    """Pure ASGI middleware: refuse the dashboard's artifact uploads (403) before the body
    is read; every other request goes to the dashboard."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(UPLOAD_PREFIX)
        ):
            await send_json_error(
                send,
                status=403,
                code="uploads_disabled",
                message="Artifact uploads are turned off on this server: a trial's artifacts "
                "are the curve plots its worker stores.",
            )
            return
        await self.app(scope, receive, send)


def dashboard_app(database_url: str, artifacts_dir: Path) -> ASGIApp:
    """The Optuna dashboard as an ASGI app, to mount at `/`, its uploads turned off."""
    # a2wsgi's precise ASGI types do not unify with Starlette's generic ones.
    wsgi: ASGIApp = WSGIMiddleware(_LazyDashboard(database_url, artifacts_dir))  # type: ignore[arg-type,assignment]
    return NoUploads(wsgi)
