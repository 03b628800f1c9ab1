"""LR range tests (``search.sampler: range_test``): a study's result and its plot.

The result lives on the study's one trial (``TrialRow.lr_range``, written by
``studies.range_run``); the study detail shows it as ``lr_range`` too, so the next round
(and a user) reads the suggestion from the study: ``lr_range["suggestion"]``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from studies import plots
from studies.db import Database, TrialRow
from studies.errors import NotFoundError
from studies.spec import Sampler
from studies.store._rows import study_row

__all__ = ["lr_ranges", "study_lr_range", "study_lr_range_png"]


def lr_ranges(db: Database, study_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The stored range-test result of each of *study_ids* that has one."""
    if not study_ids:
        return {}
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.study_id, TrialRow.lr_range).where(
                TrialRow.study_id.in_(study_ids), TrialRow.lr_range.is_not(None)
            )
        ).all()
    return {study_id: lr_range for study_id, lr_range in rows}


def study_lr_range(db: Database, study_id: int) -> dict[str, Any]:
    """The study's range-test result; NotFoundError (404) saying why when there is none:
    an unknown study, a study that is not a range test, or one whose test has not run."""
    study = study_row(db, study_id)
    sampler = (study.spec.get("search") or {}).get("sampler", Sampler.GRID.value)
    if sampler != Sampler.RANGE_TEST.value:
        raise NotFoundError(
            f"study {study_id} is not an LR range test (its search.sampler is {sampler!r}); "
            "submit one with search.sampler: range_test"
        )
    found = lr_ranges(db, [study_id]).get(study_id)
    if found is None:
        raise NotFoundError(
            f"study {study_id}'s LR range test has not run yet (or failed): no curve stored"
        )
    return found


def study_lr_range_png(db: Database, study_id: int) -> bytes:
    """The range test's loss against learning rate, the suggestion marked (see
    ``study_lr_range`` for the 404s)."""
    lr_range = study_lr_range(db, study_id)
    name = study_row(db, study_id).name
    return plots.lr_range_png(lr_range, title=f"{name}: LR range test")
