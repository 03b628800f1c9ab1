"""Deleting a finished or cancelled study: its rows, its Optuna study, its artifact files.

Retention is the user's: nothing is deleted on its own. A study is deleted only once no
worker can write to it any more (finished, or cancelled with every running trial stopped);
a study still queued or running must be cancelled first (409), since a worker training one
of its trials would otherwise write epochs into rows that no longer exist.

Order: the Optuna study goes first, sweepdoc's rows last, in one transaction. A failure in
between leaves the study listed (its rows) without its Optuna study, and deleting it again
finishes the job; the other order could leave an Optuna study no API call can reach.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from studies import checkpoints
from studies.db import AttemptRow, Database, EpochRow, StudyRow, TrialRow, TrialState
from studies.errors import ConflictError
from studies.store._cleanup import delete_optuna_study
from studies.store._rows import study_row

__all__ = ["delete_study"]


def _refusal(session: Session, study: StudyRow) -> str | None:
    """Why *study* cannot be deleted now, or None when it can."""
    open_states = [TrialState.RUNNING]
    if not study.cancel_requested:
        open_states.append(TrialState.WAITING)
    open_slots = session.scalar(
        select(func.count(TrialRow.id)).where(
            TrialRow.study_id == study.id, TrialRow.state.in_(open_states)
        )
    )
    if not open_slots:
        return None
    if study.cancel_requested:
        return (
            f"study {study.id} is cancelled but {open_slots} of its trials are still running "
            "(they stop at their next epoch); delete it once they have stopped"
        )
    return (
        f"study {study.id} is still queued or running; cancel it first "
        f"(POST /v1/studies/{study.id}/cancel, or `sweepdoc cancel {study.id}`), then delete it"
    )


def _lock_study(session: Session, db: Database, study_id: int) -> None:
    # The same lock a claim takes (studies.queue._claim), so no slot starts meanwhile.
    if db.is_postgres:
        session.execute(select(StudyRow.id).where(StudyRow.id == study_id).with_for_update())
    else:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def delete_study(db: Database, study_id: int, *, artifacts_dir: Path) -> None:
    """Delete a finished or cancelled study: its trials, epochs and attempts, its Optuna
    study and trials, and their plot files under *artifacts_dir*.

    Raises NotFoundError for an unknown id and ConflictError while any of its trials may
    still run (not cancelled, or cancelled with trials not yet stopped).
    """
    study = study_row(db, study_id)
    with db.session() as session:
        refusal = _refusal(session, study)
    if refusal:
        raise ConflictError(refusal)
    delete_optuna_study(db.url, study.optuna_study_name, artifacts_dir=artifacts_dir)
    with db.session() as session:
        _lock_study(session, db, study_id)
        refusal = _refusal(session, study)
        if refusal:  # cannot happen once nothing waits or runs; checked under the lock anyway
            raise ConflictError(refusal)
        trial_ids = list(session.scalars(select(TrialRow.id).where(TrialRow.study_id == study_id)))
        for table in (EpochRow, AttemptRow):
            session.execute(delete(table).where(table.trial_id.in_(trial_ids)))
        session.execute(delete(TrialRow).where(TrialRow.study_id == study_id))
        session.execute(delete(StudyRow).where(StudyRow.id == study_id))
    checkpoints.delete_study_checkpoints(artifacts_dir, study_id, trial_ids)
    plots = artifacts_dir / "plots"
    for trial_id in trial_ids:
        # Named from ids only (studies.plots.save_trial_curves): one file per attempt.
        for path in plots.glob(f"trial-{trial_id}-attempt-*.png"):
            path.unlink(missing_ok=True)
