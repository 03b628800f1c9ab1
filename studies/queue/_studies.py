"""Per-study and whole-queue reads and writes: cancellation, a study's derived status, and
what a worker asks of the queue (anything left to run; the study's finished results).

Cancellation is one ``UPDATE`` of the study row (running slots read the flag at their next
epoch) plus one ``UPDATE`` that ends the slots still waiting; both are conditional, so
cancelling twice changes nothing. A slot that goes back to waiting after that (its worker
was reaped, or handed it back while stopping) is ended the same way by whoever put it back
(``end_waiting_if_cancelled``), and the reconciler sweeps any a race let through, so a
cancelled study always ends and ``--exit-when-idle`` workers exit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from studies.db import Database, StudyRow, StudyStatus, TrialRow, TrialState, utcnow
from studies.queue._sql import rowcount
from studies.results import TrialSummary

# Why a slot of a cancelled study ended without running (again).
CANCELLED_BEFORE_START = "cancelled before it started"


def cancel(db: Database, study_id: int) -> list[int]:
    """Request cancellation: running slots stop at their next epoch, waiting slots end.

    Returns the Optuna trial ids of waiting slots, which the caller closes in Optuna.
    """
    now = utcnow()
    with db.session() as session:
        session.execute(
            update(StudyRow)
            .where(StudyRow.id == study_id, StudyRow.cancel_requested.is_(False))
            .values(cancel_requested=True, cancelled_at=now)
        )
        waiting_optuna = session.scalars(
            select(TrialRow.optuna_trial_id).where(
                TrialRow.study_id == study_id,
                TrialRow.state == TrialState.WAITING,
                TrialRow.optuna_trial_id.is_not(None),
            )
        ).all()
        end_waiting_if_cancelled(session, TrialRow.study_id == study_id)
    return [i for i in waiting_optuna if i is not None]


def end_waiting_if_cancelled(session: Session, *where: Any) -> int:
    """End the waiting slots (those matching *where*) of cancelled studies; return how many.

    A slot that never ran ends as pruned: stopped early, by the user, not an error.
    """
    cancelled = select(StudyRow.id).where(StudyRow.cancel_requested.is_(True))
    result = session.execute(
        update(TrialRow)
        .where(TrialRow.state == TrialState.WAITING, TrialRow.study_id.in_(cancelled), *where)
        .values(state=TrialState.PRUNED, finished_at=utcnow(), stop_reason=CANCELLED_BEFORE_START)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result)


def study_status(counts: dict[TrialState, int], *, cancel_requested: bool) -> StudyStatus:
    """A study's status from its trials' states.

    cancelled once cancellation was asked; queued while nothing has started; running while
    any slot waits or runs after something started; when every slot has finished, failed if
    any slot failed (an error, or a worker that kept dying), completed otherwise.
    """
    if cancel_requested:
        return StudyStatus.CANCELLED
    waiting = counts.get(TrialState.WAITING, 0)
    running = counts.get(TrialState.RUNNING, 0)
    total = sum(counts.values())
    if waiting == total:
        return StudyStatus.QUEUED
    if waiting or running:
        return StudyStatus.RUNNING
    return StudyStatus.FAILED if counts.get(TrialState.FAILED, 0) else StudyStatus.COMPLETED


def has_open_slots(db: Database) -> bool:
    """Whether any slot of any study is waiting or running (an idle worker may exit when not)."""
    with db.session() as session:
        open_slots = session.scalar(
            select(func.count(TrialRow.id)).where(
                TrialRow.state.in_((TrialState.WAITING, TrialState.RUNNING))
            )
        )
    return bool(open_slots)


def count_complete(db: Database, study_id: int) -> int:
    """How many of the study's slots finished COMPLETE (one indexed count)."""
    with db.session() as session:
        count = session.scalar(
            select(func.count(TrialRow.id)).where(
                TrialRow.state == TrialState.COMPLETE, TrialRow.study_id == study_id
            )
        )
    return int(count or 0)


def work_marker(db: Database) -> tuple[int, int, int]:
    """What changes whenever a claim may newly succeed: the newest slot's id (a study or a
    follow-up round submitted) and the counts of waiting and running slots (a slot put back,
    or one finishing under ``max_parallel``). One indexed read: an idle worker compares it
    often, where a claim round writes (``studies.worker``)."""
    with db.session() as session:
        newest, waiting, running = session.execute(
            select(
                func.max(TrialRow.id),
                func.count(TrialRow.id).filter(TrialRow.state == TrialState.WAITING),
                func.count(TrialRow.id).filter(TrialRow.state == TrialState.RUNNING),
            )
        ).one()
    return int(newest or 0), int(waiting), int(running)


@dataclass(frozen=True)
class CompleteTrial:
    """A complete slot of a study, as the choice of its best trial needs it."""

    number: int
    summary: TrialSummary


def complete_summaries(db: Database, study_id: int) -> list[CompleteTrial]:
    """The study's complete slots with their summaries, in slot order.

    A slot a worker holds is running, so it is never listed here: a worker adds its own
    run to these when it wants the study's best including itself.
    """
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.number, TrialRow.summary)
            .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.COMPLETE)
            .order_by(TrialRow.number)
        ).all()
    # A slot finished without a summary (none recorded) has no value: an empty summary.
    return [
        CompleteTrial(number=number, summary=TrialSummary.model_validate(summary or {}))
        for number, summary in rows
    ]
