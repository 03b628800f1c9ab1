"""A request with a method its path does not take: 405 with `Allow`; an unknown `/v1` path:
a JSON 404 (never the dashboard's HTML page)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.api.raw_errors import send_json_error

# Every method the catch-all route takes, so none of them falls through to the dashboard.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
# The catch-all route's path (service/api/app.py), left out of the search for methods.
CATCH_ALL = "/v1/{path:path}"


def _own_routes(app: Any) -> list[BaseRoute]:
    """sweepdoc's own routes: all but the catch-all and the dashboard's mount, which take
    any path."""
    return [
        route
        for route in app.router.routes
        if not isinstance(route, Mount) and getattr(route, "path", None) != CATCH_ALL
    ]


def _takes(routes: list[BaseRoute], scope: Scope, method: str) -> bool:
    # Asked the way the router itself asks (``matches``), so the routes FastAPI wraps when
    # it includes a router answer too.
    return any(route.matches({**scope, "method": method})[0] is Match.FULL for route in routes)


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """The methods *app*'s own routes take at *scope*'s path (none: not one of its paths)."""
    routes = _own_routes(app)
    return [method for method in ALL_METHODS if _takes(routes, scope, method)]


def _not_allowed_message(method: str, path: str, allowed: list[str]) -> str:
    return f"{method} is not allowed on {path}; it takes {', '.join(allowed)}."


class MethodCheck:
    """Pure ASGI middleware: 405 with `Allow` for a path of sweepdoc's own (`/v1/…`,
    `/healthz`, `/login`, …) that does not take the request's method, before anything else
    looks at the request. The dashboard's paths are its own business and pass.

    It sits outside the checks on writes (JSON content type, cross-site origin): a method
    the path does not have is refused for that reason first (RFC 9110 §15.5.6), whatever
    the request carries. Needs the app in the scope (Starlette puts it there).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not _takes(
            _own_routes(scope["app"]), scope, scope["method"]
        ):
            allowed = allowed_methods(scope["app"], scope)
            if allowed:
                await send_json_error(
                    send,
                    status=405,
                    code="method_not_allowed",
                    message=_not_allowed_message(scope["method"], scope["path"], allowed),
                    headers=((b"allow", ", ".join(allowed).encode()),),
                )
                return
        await self.app(scope, receive, send)


def unknown_endpoint(request: Request) -> JSONResponse:
    """The catch-all's answer: 405 with `Allow` when the path takes other methods (when
    ``MethodCheck`` is not installed), else a JSON 404 naming the request."""
    allowed = allowed_methods(request.app, request.scope)
    if allowed:
        message = _not_allowed_message(request.method, request.url.path, allowed)
        response = error_response(405, "method_not_allowed", message)
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(
        404,
        "not_found",
        f"No endpoint {request.method} {request.url.path}; the API is described at /docs.",
    )
