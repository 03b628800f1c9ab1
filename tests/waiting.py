"""Waiting for something a real process does: poll a check until it answers or time runs out;
run contenders in threads and wait for every one of them."""

from __future__ import annotations

import threading
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


def run_in_threads(
    target: Callable[[int], object], count: int, *, timeout_s: float = 120.0
) -> None:
    """Call ``target(0)`` … ``target(count - 1)`` each in a thread of its own, started together,
    and wait for all of them; AssertionError when one is still running after *timeout_s*
    (a hung contender fails the test instead of hanging it). Contenders that must start at
    the same instant share a ``threading.Barrier`` of their own."""
    threads = [threading.Thread(target=target, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout_s
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = sum(thread.is_alive() for thread in threads)
    assert not hung, f"{hung} of {count} threads still running after {timeout_s:g} s"
