"""Trials: a study's slots, and one trial's detail (timings, curves, epochs, attempts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from studies.db import AttemptRow, Database, EpochRow, TrialRow, TrialState, utcnow
from studies.schemas import Page, TrialDetail, TrialPublic, from_row
from studies.store._rows import study_row, trial_row
from trainer import curves_json
from trainer._paths import relative_to_root

__all__ = ["epoch_records", "get_trial", "list_trials", "study_trial_rows"]


def study_trial_rows(db: Database, study_id: int) -> list[TrialRow]:
    """Every slot of a study, in slot order; raises NotFoundError for an unknown study."""
    study_row(db, study_id)
    with db.session() as session:
        return list(
            session.scalars(
                select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number)
            )
        )


def list_trials(db: Database, study_id: int) -> Page[TrialPublic]:
    """Every trial slot of a study, in slot order."""
    rows = study_trial_rows(db, study_id)
    return Page[TrialPublic](data=[from_row(TrialPublic, r) for r in rows], count=len(rows))


def epoch_records(db: Database, row: TrialRow) -> list[dict[str, Any]]:
    """The epoch records of the trial's current attempt, in order (NaN/±inf kept)."""
    with db.session() as session:
        return list(
            session.scalars(
                select(EpochRow.record)
                .where(EpochRow.trial_id == row.id, EpochRow.attempt == row.attempt)
                .order_by(EpochRow.epoch)
            )
        )


def get_trial(db: Database, trial_id: int, *, data_root: Path | None = None) -> TrialDetail:
    """A trial with its timings, error, full curves (nulls for non-finite) and diagnosis.

    *data_root*: the data root of the workers (this server's), taken out of error texts.
    """
    row = trial_row(db, trial_id)
    records = epoch_records(db, row)
    with db.session() as session:
        attempts = list(
            session.scalars(
                select(AttemptRow)
                .where(AttemptRow.trial_id == trial_id)
                .order_by(AttemptRow.attempt)
            )
        )
    end = row.finished_at or (utcnow() if row.state is TrialState.RUNNING else None)
    num_classes = row.summary.num_classes if row.summary is not None else None
    detail = from_row(
        TrialDetail,
        row,
        duration_s=(end - row.claimed_at).total_seconds() if end and row.claimed_at else None,
        curves=curves_json(records, num_classes),
        epochs=records,
        attempts=attempts,
    )
    shown = [
        a.model_copy(update={"error": relative_to_root(a.error, data_root)})
        for a in detail.attempts
    ]
    return detail.model_copy(
        update={"error": relative_to_root(detail.error, data_root), "attempts": shown}
    )
