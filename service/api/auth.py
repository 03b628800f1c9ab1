"""Bearer-token authentication for the API and the dashboard (`SWEEPDOC_API_TOKEN`).

One ASGI middleware decides for every path, so the Optuna dashboard (a mounted WSGI app
with no authentication of its own, able to delete studies) sits behind the same check as
`/v1`:

- open: `/healthz`, `/readyz` (which then hides its worker list), `/login`, `/logout`, and
  the API description (`/docs`, `/redoc`, `/openapi.json`: the shape of the API, no data);
- `/v1` writes always need the token; `/v1` reads too, unless `SWEEPDOC_PUBLIC_READS`;
- everything else (the dashboard: `/dashboard`, `/api/…`, `/artifacts/…`, `/csv/…`,
  `/static/…`) needs the token; a browser asking for a page is sent to `/login`.

A request is authorized by `Authorization: Bearer <token>` or by the session cookie that
`/login` sets (signed, expiring and revocable: see sessions.py). Every comparison is
constant-time (`hmac.compare_digest`; the token's over SHA-256 digests, so not even its
length leaks).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.raw_errors import send_json_error
from service.api.sessions import Revocations, Sessions
from service.settings import Settings

SESSION_COOKIE = "sweepdoc_session"
OPEN_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/login",
        "/logout",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class TokenCheck:
    """Checks a presented token or session cookie against the configured token."""

    def __init__(self, token: str, *, sessions: Sessions) -> None:
        self._token_digest = _digest(token.encode())
        self.sessions = sessions

    def token_ok(self, presented: str) -> bool:
        return hmac.compare_digest(_digest(presented.encode()), self._token_digest)

    def authorized(self, authorization: str | None, cookie: str | None) -> bool:
        """Whether an `Authorization` header or a `Cookie` header carries valid credentials."""
        if authorization:
            scheme, _, credentials = authorization.partition(" ")
            if scheme.lower() == "bearer" and self.token_ok(credentials.strip()):
                return True
        return self.session_ok(cookie)

    def session_ok(self, cookie: str | None) -> bool:
        """Whether a `Cookie` header carries a valid (unexpired, unrevoked) session."""
        session = cookie_parser(cookie).get(SESSION_COOKIE, "") if cookie else ""
        return bool(session) and self.sessions.valid(session)


def token_check_for(settings: Settings) -> TokenCheck | None:
    """The check of a server with *settings*; None when no token is set (all open)."""
    if settings.api_token is None:
        return None
    token = settings.api_token.get_secret_value()
    sessions = Sessions(token, ttl_s=settings.session_ttl_s, revocations=Revocations(settings.home))
    return TokenCheck(token, sessions=sessions)


def safe_next(target: str | None) -> str:
    """A local path to go back to after login, never another site (`//host`, `https:`)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/dashboard"
    return target


class TokenAuth:
    """Pure ASGI middleware: refuse unauthenticated requests before any handler runs.

    It marks the request `state.authorized` for handlers that answer everyone but say
    more to an authorized caller (`/readyz`).
    """

    def __init__(self, app: ASGIApp, *, check: TokenCheck, public_reads: bool) -> None:
        self.app = app
        self.check = check
        self.public_reads = public_reads

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        authorized = self.check.authorized(headers.get("authorization"), headers.get("cookie"))
        scope.setdefault("state", {})["authorized"] = authorized
        path: str = scope["path"]
        method: str = scope.get("method", "GET")
        if authorized or path in OPEN_PATHS:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":  # none are served today; refuse, never pass
            await send({"type": "websocket.close", "code": 1008})
        elif path == "/v1" or path.startswith("/v1/"):
            if self.public_reads and method in READ_METHODS:
                await self.app(scope, receive, send)
            else:
                await _unauthorized(send, bool(headers.get("authorization")))
        elif method == "GET" and "text/html" in headers.get("accept", ""):
            # A person opening the dashboard: the login page, then back here.
            query = scope.get("query_string", b"").decode("latin-1")
            target = path + (f"?{query}" if query else "")
            await _redirect(send, f"/login?next={quote(target, safe='')}")
        else:
            await _unauthorized(send, bool(headers.get("authorization")))


async def _unauthorized(send: Send, presented: bool) -> None:
    reason = "The token is not valid" if presented else "This server requires a token"
    await send_json_error(
        send,
        status=401,
        code="unauthorized",
        message=f"{reason}: send `Authorization: Bearer <token>` with the server's "
        "SWEEPDOC_API_TOKEN (the CLI sends it from its own environment); browsers log "
        "in at /login.",
        headers=((b"www-authenticate", b'Bearer realm="sweepdoc"'),),
    )


async def _redirect(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
