"""A follow-up chain as the API shows it: every round, first to last, with its best trial."""

from __future__ import annotations

from sqlalchemy import select

from studies.db import Database, StudyRow, TrialRow
from studies.schemas import Chain, ChainRound
from studies.store._rows import study_row
from studies.store._studies import study_publics

__all__ = ["study_chain"]


def _chain_rows(db: Database, study_id: int) -> list[StudyRow]:
    """The rounds of *study_id*'s chain: up its parents to round 1, then down its follow-ups.

    A deleted round ends the walk on its side (the links are plain ids, not foreign keys).
    """
    row = study_row(db, study_id)
    with db.session() as session:
        first = row
        seen = {row.id}
        while first.parent_id is not None and first.parent_id not in seen:
            parent = session.get(StudyRow, first.parent_id)
            if parent is None:
                break
            seen.add(parent.id)
            first = parent
        rounds = [first]
        ids = {first.id}
        while rounds[-1].follow_up_id is not None and rounds[-1].follow_up_id not in ids:
            child = session.get(StudyRow, rounds[-1].follow_up_id)
            if child is None:
                break
            ids.add(child.id)
            rounds.append(child)
    return rounds


def study_chain(db: Database, study_id: int) -> Chain:
    """Every round of the chain *study_id* belongs to (a study without follow-ups: itself)."""
    rows = _chain_rows(db, study_id)
    publics = study_publics(db, rows)
    best_ids = [p.best_trial.trial_id for p in publics if p.best_trial is not None]
    with db.session() as session:
        labels = dict(
            session.execute(
                select(TrialRow.id, TrialRow.label).where(TrialRow.id.in_(best_ids))
            ).all()
        )
    return Chain(
        rounds=[
            ChainRound(
                id=study.id,
                name=study.name,
                round=study.round,
                status=study.status,
                best_trial_id=None if study.best_trial is None else study.best_trial.trial_id,
                best_label=None
                if study.best_trial is None
                else labels.get(study.best_trial.trial_id),
                objective=study.objective,
                best_value=None if study.best_trial is None else study.best_trial.value,
                chain_reason=study.chain_reason,
            )
            for study in publics
        ]
    )
