"""Refuse the writes a web page of another site could make through a visitor's browser.

A page on another origin can make the browser send a request to this server: a plain
HTML form (a POST with a form body, no preflight, cookies included when the page shares
the site), or a `fetch` whose answer it cannot read but whose effect stands. SameSite
cookies do not separate origins that differ only by port, and the default server needs no
credentials at all. Two checks close this, for every path (the dashboard's `/api/…` too):

- a write (POST, PUT, PATCH, DELETE) whose `Origin` is not this server's own (scheme, host
  and port as the request itself names them), or whose `Sec-Fetch-Site` says another site
  sent it, is refused with 403. Requests with neither header (the CLI, curl, scripts) are
  not from a browser page and pass: a browser always sends `Origin` on a cross-origin POST;
- a write under `/v1` must declare `Content-Type: application/json` (415 otherwise), even
  with no body (`/v1/studies/{id}/cancel`): a form cannot send that type, and a script that
  sets it cross-origin needs a CORS preflight, which this server never grants.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.raw_errors import send_json_error

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MEDIA_TYPE = "application/json"
# Sec-Fetch-Site values a browser sends when a page of another origin made the request.
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin_of(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or base URL; None when it is not one (`null`)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.rstrip("."), port or _DEFAULT_PORTS[parts.scheme]


def own_origin(scope: Scope, host_header: str) -> tuple[str, str, int] | None:
    """This server's origin as the request addresses it: its scheme (the proxy's, when
    uvicorn trusts `X-Forwarded-Proto` from it) and its `Host` header."""
    return _origin_of(f"{scope.get('scheme', 'http')}://{host_header}")


def is_foreign(scope: Scope, headers: dict[str, str]) -> bool:
    """Whether a browser says a page of another origin sent this request."""
    if headers.get("sec-fetch-site", "").lower() in _FOREIGN_FETCH_SITES:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False  # not sent by a web page (or by a same-origin GET, never a write)
    # `Origin: null` (a sandboxed frame, a file: page) is foreign too: _origin_of gives None.
    sender = _origin_of(origin)
    return sender is None or sender != own_origin(scope, headers.get("host", ""))


def is_json(content_type: str) -> bool:
    """Whether a `Content-Type` header declares JSON (parameters such as charset allowed)."""
    return content_type.split(";", 1)[0].strip().lower() == JSON_MEDIA_TYPE


class CrossSiteGuard:
    """Pure ASGI middleware: 403 for a write a page of another origin sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WRITE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        if is_foreign(scope, headers):
            await send_json_error(
                send,
                status=403,
                code="cross_site_request",
                message="Refused: this request to change data was sent by a page of another "
                "site (its Origin or Sec-Fetch-Site header says so). Use the dashboard or "
                "the API from this server's own address.",
            )
        else:
            await self.app(scope, receive, send)


class JsonWrites:
    """Pure ASGI middleware: 415 for a write under `/v1` that does not declare JSON.

    Registered inside the token check, so a client without the token learns only that
    (401), not what the API accepts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] not in WRITE_METHODS
            or not (path == "/v1" or path.startswith("/v1/"))
        ):
            await self.app(scope, receive, send)
            return
        content_type = next(
            (v.decode("latin-1") for k, v in scope["headers"] if k == b"content-type"), ""
        )
        if is_json(content_type):
            await self.app(scope, receive, send)
        else:
            await send_json_error(
                send,
                status=415,
                code="unsupported_media_type",
                message="Every write under /v1 must send `Content-Type: application/json` "
                "(even without a body, e.g. POST /v1/studies/{id}/cancel).",
            )
