"""A real `sweepdoc serve` (API only, no workers) for the external-run tests: a training loop
of the test's own talks to it over HTTP, as a user's would."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service.serve_process import ServeProcess, serving

# A fast loop posts many epochs a second; the default write limit (120/minute) is for people.
FAST_LOOP_ENV = {"SWEEPDOC_WRITE_RATE_LIMIT": "100000/minute"}


@contextmanager
def api_server(home: Path, **env: str) -> Iterator[ServeProcess]:
    """`serve --workers 0` on a SQLite file under *home*, with *env* set."""
    process = ServeProcess(
        home,
        database_url=f"sqlite:///{home / 'sweepdoc.db'}",
        workers=0,
        env_overrides={**FAST_LOOP_ENV, **env},
    )
    with serving(process, workers=0):
        yield process
