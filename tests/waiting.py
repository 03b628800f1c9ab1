"""Waiting for something a real process does: poll a check until it answers or time runs out."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T], what: str, *, timeout_s: float = 90.0, poll_s: float = 0.05
) -> T:
    """The first truthy answer of *check*; AssertionError naming *what* after *timeout_s*.

    Generous timeouts are deliberate: these wait on real processes on a busy 2-core machine,
    and how long things take is measured in bench/, never asserted here.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(poll_s)
    raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
