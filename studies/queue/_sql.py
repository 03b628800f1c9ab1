"""What every queue module shares: the row count that says whether a conditional write
happened, and the history row of an attempt that ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult

from studies.db import AttemptRow, TrialRow, TrialState


def rowcount(result: Any) -> int:
    """Rows a conditional ``UPDATE`` changed: 1 when its ``WHERE`` still held, else 0.

    ``Session.execute`` is typed as returning a plain ``Result``; an ``UPDATE``'s is a
    ``CursorResult``, the one that carries the count.
    """
    return cast(CursorResult[Any], result).rowcount


class HeldAttempt(NamedTuple):
    """An attempt as its slot held it: what the attempt's history row keeps (its fields are
    `AttemptRow`'s columns), for a slot whose row no longer says it (a release has already
    reset its worker and attempt)."""

    trial_id: int
    attempt: int
    worker: str | None
    optuna_trial_number: int | None
    claimed_at: datetime | None

    @classmethod
    def of(cls, row: TrialRow) -> HeldAttempt:
        """The attempt a slot's *row* holds, read while the attempt still held it."""
        return cls(row.id, row.attempt, row.worker, row.optuna_trial_number, row.claimed_at)


def ended_attempt(
    held: HeldAttempt, *, finished_at: datetime, error: str | None, state: TrialState
) -> AttemptRow:
    """The history row of the attempt *held*, ended in *state* at *finished_at*."""
    return AttemptRow(**held._asdict(), state=state, finished_at=finished_at, error=error)
