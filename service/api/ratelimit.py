"""Per-client rate limits, answered with 429 and `Retry-After` before any handler runs.

Each limit is a `RateRule`: which requests it counts (method and path), how many it allows
(a `limits` rate such as `10/minute`, read from its own setting), and the setting's name for
the message. `rate_rules(settings)` lists the rules of a server; the `RateLimit` middleware
counts every request against each rule that applies, per client address, in a moving window.

Counters live in this process's memory (`limits`' MemoryStorage): `serve` runs one API
process, so that is every request it answers; they restart empty with the server, which
only forgives a client its recent requests. Behind a reverse proxy every client shares the
proxy's address, so the limit applies to them together (stricter, never looser).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.raw_errors import send_json_error
from service.settings import Settings

# Which requests a rule counts: (method, path) → whether this one does.
RequestMatch = Callable[[str, str], bool]


@dataclass(frozen=True)
class RateRule:
    """One limit: *limit* requests per window for each client, on the requests *applies* to."""

    name: str  # names the counter; unique per server
    setting: str  # the environment variable that sets *limit*, named in the 429's message
    limit: RateLimitItem
    applies: RequestMatch


def _is_login_attempt(method: str, path: str) -> bool:
    return method == "POST" and path == "/login"


# Requests that change nothing: never counted as writes.
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# POSTs that store nothing (a diagnosis of curves sent in the body) or have their own rule.
_NOT_WRITES = frozenset({"/v1/diagnose", "/login", "/logout"})


# An external run's epoch (a user's training loop streaming its curves): counted on its own,
# as a loop posts one an epoch, which a small network on a GPU can do several times a second,
# so the writes' budget (sized for people and scripts) would stall it.
_RUN_EPOCH = re.compile(r"^/v1/runs/[^/]+/epochs$")


def _is_run_epoch(method: str, path: str) -> bool:
    return method == "POST" and _RUN_EPOCH.match(path) is not None


def _is_write(method: str, path: str) -> bool:
    return (
        method not in _READ_METHODS
        and path not in _NOT_WRITES
        and not _is_run_epoch(method, path)
    )


def rate_rules(settings: Settings) -> list[RateRule]:
    """The limits of a server with *settings*."""
    return [
        RateRule(
            name="login",
            setting="SWEEPDOC_LOGIN_RATE_LIMIT",
            limit=parse(settings.login_rate_limit),
            applies=_is_login_attempt,
        ),
        RateRule(
            name="writes",
            setting="SWEEPDOC_WRITE_RATE_LIMIT",
            limit=parse(settings.write_rate_limit),
            applies=_is_write,
        ),
        RateRule(
            name="run-epochs",
            setting="SWEEPDOC_RUN_EPOCH_RATE_LIMIT",
            limit=parse(settings.run_epoch_rate_limit),
            applies=_is_run_epoch,
        ),
    ]


class RateLimit:
    """Pure ASGI middleware: refuse a client's request past any applicable rule's limit."""

    def __init__(self, app: ASGIApp, *, rules: Sequence[RateRule]) -> None:
        self.app = app
        self.rules = tuple(rules)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        client = scope.get("client")
        address = client[0] if client else "unknown"
        for rule in self.rules:
            if rule.applies(method, path) and not self._limiter.hit(rule.limit, rule.name, address):
                await self._refuse(send, rule, address)
                return
        await self.app(scope, receive, send)

    async def _refuse(self, send: Send, rule: RateRule, address: str) -> None:
        stats = self._limiter.get_window_stats(rule.limit, rule.name, address)
        # Whole seconds (the header's unit), at least 1: a 0 would invite an instant retry.
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        await send_json_error(
            send,
            status=429,
            code="rate_limited",
            message=f"Too many requests: this server allows {rule.limit} per client for "
            f"{rule.name} (setting {rule.setting}). Retry in {retry_after} s.",
            headers=((b"retry-after", str(retry_after).encode()),),
        )
