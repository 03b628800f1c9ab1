"""Answer only requests addressed to this server by name: the defence against DNS rebinding.

A web page on `evil.example` can make its own name resolve to 127.0.0.1 and then, as far as
the browser knows, talk to its own site while reaching a sweepdoc server on this machine;
what gives it away is the `Host` header, which still says `evil.example`. So every request
(the API, the dashboard and its `/api/…`, the probes) must name a host the server was
started for: a loopback name or address, the address `serve` listens on and this machine's
own names (`serve.server_names` adds them), or one listed in `SWEEPDOC_ALLOWED_HOSTS` (a
reverse proxy's public name). Anything else is refused with 400 before any handler runs.

Only the name is compared, never the port: rebinding changes the name, and a proxy may
forward from any port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.raw_errors import send_json_error

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def host_name(host_header: str) -> str | None:
    """The name in a `Host` header (`name`, `name:port`, `[v6]:port`), lower-case, without
    a trailing dot; None when it is not a valid host."""
    if not host_header or any(c in host_header for c in "/?#@\\ "):
        return None
    try:
        parts = urlsplit(f"//{host_header}")
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number in range
    except ValueError:
        return None
    return parts.hostname.rstrip(".") if parts.hostname else None


def _normalized(pattern: str) -> str:
    return pattern.strip().lower().strip("[]").rstrip(".")


def _is_loopback_address(name: str) -> bool:
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class AllowedHosts:
    """Pure ASGI middleware: 400 (JSON) unless the `Host` header names an allowed host.

    *allowed* holds names (`api.example`), subdomain wildcards (`*.example.org`) or `*`
    (any host: only behind a proxy that checks the name itself). Loopback names and
    addresses are always allowed.
    """

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str]) -> None:
        self.app = app
        patterns = {_normalized(p) for p in (*LOOPBACK_NAMES, *allowed) if p.strip()}
        self.allow_any = "*" in patterns
        self.names = frozenset(p for p in patterns if not p.startswith("*."))
        self.suffixes = tuple(p[1:] for p in patterns if p.startswith("*."))  # ".example.org"

    def allows(self, host_header: str) -> bool:
        """Whether a request with this `Host` header is for this server."""
        name = host_name(host_header)
        if name is None:
            return False
        return (
            self.allow_any
            or name in self.names
            or name.endswith(self.suffixes)
            or _is_loopback_address(name)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host_header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        if self.allows(host_header):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":  # none are served today; refuse, never pass
            await send({"type": "websocket.close", "code": 1008})
        else:
            await send_json_error(
                send,
                status=400,
                code="host_not_allowed",
                message="This server does not answer to the host named in the request's "
                "Host header. Use its own address (e.g. http://127.0.0.1:8000), or add the "
                "name to SWEEPDOC_ALLOWED_HOSTS (comma-separated) when it sits behind a "
                "reverse proxy.",
            )
