"""What every queue module shares: the row count that says whether a conditional write happened."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult


def rowcount(result: Any) -> int:
    """Rows a conditional ``UPDATE`` changed: 1 when its ``WHERE`` still held, else 0.

    ``Session.execute`` is typed as returning a plain ``Result``; an ``UPDATE``'s is a
    ``CursorResult``, the one that carries the count.
    """
    return cast(CursorResult[Any], result).rowcount
