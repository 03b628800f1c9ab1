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
    """An attempt as its slot held it: what the attempt's history row keeps, for a slot whose
    row no longer says it (a release has already reset its worker and attempt). A slot's row
    read while the attempt held it serves as one too."""

    id: int
    attempt: int
    worker: str | None
    optuna_trial_number: int | None
    claimed_at: datetime | None


def ended_attempt(
    held: HeldAttempt | TrialRow, *, finished_at: datetime, error: str | None, state: TrialState
) -> AttemptRow:
    """The history row of the attempt *held*, ended in *state* at *finished_at*."""
    return AttemptRow(
        trial_id=held.id,
        attempt=held.attempt,
        state=state,
        worker=held.worker,
        optuna_trial_number=held.optuna_trial_number,
        claimed_at=held.claimed_at,
        finished_at=finished_at,
        error=error,
    )
