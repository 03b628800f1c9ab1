"""A real `sweepdoc serve` (API only, no workers) for the external-run tests: a training loop
of the test's own talks to it over HTTP, as a user's would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service.serve_process import ServeProcess, sqlite_server

# A fast loop posts many epochs a second; the default write limit (120/minute) is for people.
FAST_LOOP_ENV = {"SWEEPDOC_WRITE_RATE_LIMIT": "100000/minute"}


@contextmanager
def api_server(home: Path, **env: str) -> Iterator[ServeProcess]:
    """`serve --workers 0` on a SQLite file under *home*, with *env* set."""
    with sqlite_server(home, workers=0, env={**FAST_LOOP_ENV, **env}) as process:
        yield process
