"""Dashboard sessions: signed cookies that expire, and a logout that revokes them.

A session cookie is `<issued_ns>.<expires_s>.<signature>`: when it was issued (nanoseconds
since the epoch), when it stops being valid (seconds since the epoch) and an HMAC-SHA256 of
both under a key derived from the token. So a cookie cannot be forged or extended without
the token, it dies on its own after `SWEEPDOC_SESSION_TTL_S`, and changing the token
invalidates every cookie at once.

Logout revokes server-side with one timestamp, "sessions issued before this are void",
kept in `$SWEEPDOC_HOME/sessions-valid-after`: every browser shares the one token, so they
are one principal and a logout ends all their sessions. A file, not a table: `serve` is the
one process that answers HTTP for a deployment, and the file, written atomically beside
the SQLite database and the artifacts, holds across its restarts and is read by every
process started on the same home. (A second API server on another machine would need it in
the shared database; sweepdoc does not run one.)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from pathlib import Path

logger = logging.getLogger(__name__)

_KEY_CONTEXT = b"sweepdoc dashboard session v2"
VALID_AFTER_FILE = "sessions-valid-after"


class Revocations:
    """The server-side "sessions issued before this instant are void" of a sweepdoc home."""

    def __init__(self, home: Path) -> None:
        self.path = home / VALID_AFTER_FILE

    def valid_after_ns(self) -> int:
        """Sessions issued at or before this instant (ns since the epoch) are revoked."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return 0
        try:
            return int(text.strip())
        except ValueError:
            # Written atomically, so only a hand edit gets here; the file's own time is
            # when it was last written, which is the strictest reading that still lets a
            # fresh login in.
            logger.warning("%s is not a timestamp; using its modification time", self.path)
            return self.path.stat().st_mtime_ns

    def revoke_all(self, *, now_ns: int | None = None) -> None:
        """Void every session issued up to now."""
        stamp = time.time_ns() if now_ns is None else now_ns
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{VALID_AFTER_FILE}.{os.getpid()}")
        partial.write_text(f"{stamp}\n")
        os.replace(partial, self.path)  # atomic: a reader sees the old stamp or the new


class Sessions:
    """Issues and checks the session cookies of one token."""

    def __init__(self, token: str, *, ttl_s: float, revocations: Revocations) -> None:
        self._key = hmac.new(token.encode(), _KEY_CONTEXT, hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self.revocations = revocations

    def _signature(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, *, now_ns: int | None = None) -> str:
        """A new cookie value, valid for `ttl_s` from *now_ns* (default: now)."""
        issued_ns = time.time_ns() if now_ns is None else now_ns
        expires_s = int(issued_ns / 1e9 + self.ttl_s)
        payload = f"{issued_ns}.{expires_s}"
        return f"{payload}.{self._signature(payload)}"

    def valid(self, value: str) -> bool:
        """Whether *value* is a cookie this server issued, not expired and not revoked."""
        issued, _, rest = value.partition(".")
        expires, _, signature = rest.partition(".")
        if not (issued.isdigit() and expires.isdigit()):
            return False
        expected = self._signature(f"{issued}.{expires}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return False
        return int(expires) > time.time() and int(issued) > self.revocations.valid_after_ns()
