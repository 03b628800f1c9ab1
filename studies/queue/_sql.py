"""What every queue module shares: the row count that says whether a conditional write
happened, and the history row of an attempt that failed."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult

from studies.db import AttemptRow, TrialState


def rowcount(result: Any) -> int:
    """Rows a conditional ``UPDATE`` changed: 1 when its ``WHERE`` still held, else 0.

    ``Session.execute`` is typed as returning a plain ``Result``; an ``UPDATE``'s is a
    ``CursorResult``, the one that carries the count.
    """
    return cast(CursorResult[Any], result).rowcount


def failed_attempt(row: Any, *, finished_at: datetime, error: str) -> AttemptRow:
    """The history row of *row*'s current attempt (a slot as read before the conditional
    write that failed it: its attempt, worker, Optuna trial number and claim time)."""
    return AttemptRow(
        trial_id=row.id,
        attempt=row.attempt,
        state=TrialState.FAILED,
        worker=row.worker,
        optuna_trial_number=row.optuna_trial_number,
        claimed_at=row.claimed_at,
        finished_at=finished_at,
        error=error,
    )
