"""Studies: list, get and cancel, each with its status, counts and best trial."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from studies import optuna_bridge, queue
from studies.db import ChainState, Database, StudyRow, StudyStatus, TrialRow, TrialState
from studies.errors import ConflictError
from studies.queue._sql import rowcount
from studies.results import Candidate, best_trial
from studies.schemas import BestTrial, Page, StudyPublic, from_row
from studies.spec import Objective, stored_follow_up_rounds
from studies.store._range import lr_ranges
from studies.store._rows import study_row

__all__ = [
    "cancel_study",
    "count_unfinished_studies",
    "get_study",
    "list_studies",
    "study_publics",
    "trial_candidate",
]


def count_unfinished_studies(db: Database, *, session: Session | None = None) -> int:
    """Studies not cancelled with a trial still waiting or running (queued or running).

    *session*: count inside that transaction (the submission's, under its lock).
    """
    query = (
        select(func.count(func.distinct(TrialRow.study_id)))
        .join(StudyRow, StudyRow.id == TrialRow.study_id)
        .where(
            TrialRow.state.in_([TrialState.WAITING, TrialState.RUNNING]),
            StudyRow.cancel_requested.is_(False),
        )
    )
    if session is not None:
        return int(session.scalar(query) or 0)
    with db.session() as own:
        return int(own.scalar(query) or 0)


def _objective(study: StudyRow) -> Objective:
    # Specs are stored as dumped by StudySpec, so the objective is always there; .get keeps
    # rows from before the field existed readable.
    return Objective(study.spec.get("objective", Objective.VAL_ACC))


def trial_candidate(row: TrialRow) -> Candidate:
    """What ``results.best_trial`` needs of a slot: the run's objective value, if complete."""
    value = row.summary.objective_value if row.summary is not None else None
    return Candidate(number=row.number, complete=row.state is TrialState.COMPLETE, value=value)


def _counts(db: Database, study_ids: list[int]) -> dict[int, dict[TrialState, int]]:
    counts: dict[int, dict[TrialState, int]] = {i: dict.fromkeys(TrialState, 0) for i in study_ids}
    if not study_ids:
        return counts
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.study_id, TrialRow.state, func.count(TrialRow.id))
            .where(TrialRow.study_id.in_(study_ids))
            .group_by(TrialRow.study_id, TrialRow.state)
        ).all()
    for study_id, state, count in rows:
        counts[study_id][state] = count
    return counts


def _best_trials(db: Database, studies: list[StudyRow]) -> dict[int, BestTrial]:
    if not studies:
        return {}
    with db.session() as session:
        complete = list(
            session.scalars(
                select(TrialRow).where(
                    TrialRow.study_id.in_([s.id for s in studies]),
                    TrialRow.state == TrialState.COMPLETE,
                )
            )
        )
    best: dict[int, BestTrial] = {}
    for study in studies:
        trials = [t for t in complete if t.study_id == study.id]
        maximize = _objective(study) is Objective.VAL_ACC
        winner = best_trial(trials, maximize=maximize, candidate=trial_candidate)
        if winner is None:
            continue
        value = trial_candidate(winner).value
        assert value is not None and winner.params is not None  # best_trial picked it
        best[study.id] = BestTrial(
            trial_id=winner.id, number=winner.number, lr=float(winner.params["lr"]), value=value
        )
    return best


def study_publics(db: Database, rows: list[StudyRow]) -> list[StudyPublic]:
    """The public view of each study row: status, counts, best trial, progress."""
    counts = _counts(db, [r.id for r in rows])
    best = _best_trials(db, rows)
    ranges = lr_ranges(db, [r.id for r in rows])
    publics = []
    for row in rows:
        total = sum(counts[row.id].values())
        finished = sum(n for state, n in counts[row.id].items() if state.finished)
        publics.append(
            from_row(
                StudyPublic,
                row,
                status=queue.study_status(counts[row.id], cancel_requested=row.cancel_requested),
                counts=counts[row.id],
                best_trial=best.get(row.id),
                progress=finished / total if total else 0.0,
                objective=_objective(row),
                lr_range=ranges.get(row.id),
            )
        )
    return publics


def get_study(db: Database, study_id: int) -> StudyPublic:
    """One study with its status, counts, best trial and progress."""
    return study_publics(db, [study_row(db, study_id)])[0]


def list_studies(
    db: Database, *, status: StudyStatus | None = None, offset: int = 0, limit: int = 50
) -> Page[StudyPublic]:
    """Studies, newest first; ``count`` is the number of matches before paging."""
    if offset < 0 or not 1 <= limit <= 1000:
        raise ValueError(f"need offset >= 0 and 1 <= limit <= 1000, got {offset=} {limit=}")
    with db.session() as session:
        if status is None:
            count = session.scalar(select(func.count(StudyRow.id))) or 0
            rows = list(
                session.scalars(
                    select(StudyRow).order_by(StudyRow.id.desc()).offset(offset).limit(limit)
                )
            )
            return Page[StudyPublic](data=study_publics(db, rows), count=count)
        rows = list(session.scalars(select(StudyRow).order_by(StudyRow.id.desc())))
    # Status is derived from the trials, so it is filtered here rather than in SQL.
    matching = [s for s in study_publics(db, rows) if s.status == status]
    return Page[StudyPublic](data=matching[offset : offset + limit], count=len(matching))


def _stop_loop(db: Database, study: StudyRow, reason: str) -> bool:
    """Write why the chain stops at *study*, unless its next round was decided first
    (the same conditional claim as studies.chain's, so exactly one of them lands)."""
    if stored_follow_up_rounds(study.spec) == 0:
        return False
    with db.session() as session:
        result = session.execute(
            update(StudyRow)
            .where(
                StudyRow.id == study.id,
                StudyRow.follow_up_id.is_(None),
                StudyRow.chain_reason.is_(None),
            )
            .values(chain_reason=reason, chain_state=ChainState.DECIDED)
        )
    return rowcount(result) == 1


def _cancel_one(db: Database, study_id: int) -> None:
    for optuna_trial_id in queue.cancel(db, study_id):
        optuna_bridge.end_waiting_trial(db.url, optuna_trial_id)


def cancel_study(db: Database, study_id: int) -> StudyPublic:
    """Cancel a study: running trials stop at their next epoch, finished results stay; the
    follow-up rounds after it are cancelled too and its chain takes no new round.

    A finished round is not marked cancelled (its results stand); only what runs after it
    stops. 409 when there is nothing left to stop.
    """
    current = get_study(db, study_id)
    reason = f"The loop stopped: study {study_id} was cancelled."
    stopped_something = current.status not in (StudyStatus.COMPLETED, StudyStatus.FAILED)
    row: StudyRow | None = study_row(db, study_id)
    seen: set[int] = set()  # a chain links forwards only; this only guards a corrupt link
    while row is not None and row.id not in seen:
        seen.add(row.id)
        if study_publics(db, [row])[0].status in (StudyStatus.QUEUED, StudyStatus.RUNNING):
            _cancel_one(db, row.id)  # its flag set: no next round can be decided after this
            stopped_something = True
        stopped_something |= _stop_loop(db, row, reason)
        # Read after the writes above: a round decided just before them is seen here.
        with db.session() as session:
            row = session.get(StudyRow, row.id)
            next_id = None if row is None else row.follow_up_id
            row = None if next_id is None else session.get(StudyRow, next_id)
    if not stopped_something:
        raise ConflictError(
            f"study {study_id} already finished ({current.status}); nothing to cancel"
        )
    return get_study(db, study_id)
