"""One row by id, or the NotFoundError an API client sees as 404."""

from __future__ import annotations

from typing import TypeVar

from studies.db import Base, Database, StudyRow, TrialRow
from studies.errors import NotFoundError

__all__ = ["row_or_404", "study_row", "trial_row"]

R = TypeVar("R", bound=Base)

# How a missing row of each table is named in the error ("study 7 does not exist").
_KINDS: dict[type[Base], str] = {StudyRow: "study", TrialRow: "trial"}


def row_or_404(db: Database, table: type[R], row_id: int) -> R:
    """The row of *table* with id *row_id*; raises NotFoundError naming the kind and id."""
    with db.session() as session:
        row = session.get(table, row_id)
    if row is None:
        raise NotFoundError(f"{_KINDS.get(table, table.__name__)} {row_id} does not exist")
    return row


def study_row(db: Database, study_id: int) -> StudyRow:
    """The study's row; raises NotFoundError."""
    return row_or_404(db, StudyRow, study_id)


def trial_row(db: Database, trial_id: int) -> TrialRow:
    """The trial's row; raises NotFoundError."""
    return row_or_404(db, TrialRow, trial_id)
