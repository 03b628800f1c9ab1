"""The epoch rows a resumed attempt continues (``studies.resume`` decides when to resume).

A slot's epoch rows are kept per attempt. A reaped attempt's rows stay under its number;
a released attempt's rows stay too (``release``), under the number its slot's next
attempt reuses. When a new attempt starts it takes over the rows it continues, in one
transaction fenced like every other attempt write:

- resuming after epoch k from the rows of an earlier attempt: copies of that attempt's
  epochs 1..k are stored as this attempt's own (with their original records and times),
  so the trial's curves, served from the current attempt's rows, go on without a gap;
- resuming from rows already under this attempt's number (after a release): they are
  kept up to epoch k;
- starting afresh: any rows already under this attempt's number (a release's) are dropped.

Either way no epoch row is duplicated (``uq_sweepdoc_epochs_epoch`` holds one row per
attempt and epoch) and ``epochs_done`` says where the attempt starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from studies.db import Database, EpochRow
from studies.queue._attempt import _update_ours
from studies.queue._claim import Claim


@dataclass(frozen=True)
class StoredEpochs:
    """The epoch rows of a slot's latest attempt that stored any."""

    attempt: int
    records: list[dict[str, Any]]  # in epoch order


def latest_epochs(db: Database, claim: Claim) -> StoredEpochs | None:
    """The rows of the latest attempt, up to and including *claim*'s own number, that
    stored any epoch; None when no attempt of the slot has."""
    with db.session() as session:
        attempt = session.scalar(
            select(EpochRow.attempt)
            .where(EpochRow.trial_id == claim.trial_id, EpochRow.attempt <= claim.attempt)
            .order_by(EpochRow.attempt.desc())
            .limit(1)
        )
        if attempt is None:
            return None
        records = session.scalars(
            select(EpochRow.record)
            .where(EpochRow.trial_id == claim.trial_id, EpochRow.attempt == attempt)
            .order_by(EpochRow.epoch)
        )
        return StoredEpochs(attempt=attempt, records=list(records))


def continue_epochs(db: Database, claim: Claim, *, source: int | None, upto: int) -> bool:
    """Make this attempt's rows epochs 1..*upto* of attempt *source* (None: no rows, a
    fresh start); False, with nothing written, when the slot is no longer this attempt's."""
    if (source is None) != (upto == 0):
        raise ValueError(f"continue_epochs: source={source} needs upto > 0, got upto={upto}")
    with db.session() as session:
        if not _update_ours(session, claim, epochs_done=upto):
            return False
        mine = (EpochRow.trial_id == claim.trial_id, EpochRow.attempt == claim.attempt)
        session.execute(delete(EpochRow).where(*mine, EpochRow.epoch > upto))
        if source is not None and source != claim.attempt:
            session.execute(delete(EpochRow).where(*mine))
            earlier = session.scalars(
                select(EpochRow)
                .where(
                    EpochRow.trial_id == claim.trial_id,
                    EpochRow.attempt == source,
                    EpochRow.epoch <= upto,
                )
                .order_by(EpochRow.epoch)
            )
            session.add_all(
                EpochRow(
                    trial_id=claim.trial_id,
                    attempt=claim.attempt,
                    epoch=row.epoch,
                    record=row.record,
                    created_at=row.created_at,  # when the epoch was trained, not copied
                )
                for row in list(earlier)
            )
    return True
