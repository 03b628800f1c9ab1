"""What a `/v1` request that no route takes gets: 405 with `Allow`, or a JSON 404."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.routing import Match, Mount

from service.api.errors import error_response

# Every method the catch-all route takes, so none of them falls through to the dashboard.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]


def _allowed_methods(request: Request, catch_all: str) -> list[str]:
    """The methods the API's routes take at this request's path (none: the path is unknown).

    Asked of each route the way the router itself asks (``matches``), so routes included
    from routers (wrapped by FastAPI) answer too; the catch-all and the dashboard's mount,
    which take any path, are left out.
    """
    routes = [
        route
        for route in request.app.router.routes
        if not isinstance(route, Mount) and getattr(route, "path", None) != catch_all
    ]
    return [
        method
        for method in ALL_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def unknown_endpoint(request: Request, *, catch_all: str) -> JSONResponse:
    """405 with `Allow` for a method the path does not take (RFC 9110 §15.5.6), else 404.

    *catch_all* is the path of the route answering with this, left out of the search.
    """
    allowed = _allowed_methods(request, catch_all)
    if allowed:
        response = error_response(
            405,
            "method_not_allowed",
            f"{request.method} is not allowed on {request.url.path}; it takes "
            f"{', '.join(allowed)}.",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    return error_response(
        404,
        "not_found",
        f"No endpoint {request.method} {request.url.path}; the API is described at /docs.",
    )
