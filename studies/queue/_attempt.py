"""What the worker holding a slot writes: its attempt, heartbeats, epochs and outcome.

Every write goes through ``_update_ours``: one ``UPDATE`` conditional on the slot still
being this attempt's (running, same worker, same attempt number), whose row count says
whether it happened. The attempt number is the fence: a worker that stalled past its grace
was reaped and the slot re-claimed under a higher number, so nothing it writes afterwards
lands. A False answer means exactly that, and the worker writes nothing more for the slot
(its Optuna trial is failed, never told a result: ``studies.trial_run``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session

from studies.db import (
    Database,
    EpochRow,
    StudyRow,
    TrialRow,
    TrialState,
    WorkerRow,
    utcnow,
)
from studies.queue._claim import Claim
from studies.queue._sql import HeldAttempt, ended_attempt, rowcount
from studies.queue._studies import end_waiting_if_cancelled
from studies.results import TrialSummary


def _ours(claim: Claim) -> Any:
    """The slot is still this attempt's: running, same worker, same attempt number (the
    fence: a reaped and re-claimed slot has a higher attempt number)."""
    return and_(
        TrialRow.id == claim.trial_id,
        TrialRow.state == TrialState.RUNNING,
        TrialRow.worker == claim.worker,
        TrialRow.attempt == claim.attempt,
    )


def _update_ours(session: Session, claim: Claim, **values: Any) -> bool:
    """One conditional ``UPDATE`` of the slot while it is still this attempt's; True when it
    happened (row count 1), False when the slot was taken away (reaped, re-claimed)."""
    result = session.execute(
        update(TrialRow)
        .where(_ours(claim))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def start_attempt(
    db: Database,
    claim: Claim,
    *,
    params: dict[str, Any],
    optuna_trial_id: int,
    optuna_trial_number: int,
) -> bool:
    """Record the attempt's parameters and Optuna trial; False if the slot was taken away.

    Idempotent: a retry after a transient error writes the same values again."""
    with db.session() as session:
        return _update_ours(
            session,
            claim,
            params=params,
            optuna_trial_id=optuna_trial_id,
            optuna_trial_number=optuna_trial_number,
            heartbeat_at=utcnow(),
        )


def mark_packed(db: Database, claim: Claim, *, packed_with: list[int]) -> bool:
    """Record the slots this attempt trains with as one packed model (shown as the trial's
    ``packed_with``); False if the slot was taken away."""
    with db.session() as session:
        return _update_ours(session, claim, packed_with=sorted(packed_with))


def beat(db: Database, claim: Claim) -> bool:
    """Refresh the slot's heartbeat; False if the slot is no longer ours (reaped)."""
    now = utcnow()
    with db.session() as session:
        owned = _update_ours(session, claim, heartbeat_at=now)
        worker: dict[str, Any] = {"last_seen_at": now}
        if owned:
            # A packed worker runs several slots and its row names one: any it still holds,
            # so the row stays right after another member of the pack has finished.
            worker["current_trial_id"] = claim.trial_id
        session.execute(update(WorkerRow).where(WorkerRow.name == claim.worker).values(worker))
        return owned


@dataclass(frozen=True)
class EpochAck:
    owned: bool  # False: the slot was reaped; stop without telling Optuna
    cancel_requested: bool
    # The study's slots finished COMPLETE, counted in the same transaction (the pruner's
    # cue to read Optuna's finished trials again: ``studies.pack_pruning``); None when the
    # slot was not owned.
    complete_in_study: int | None = None


@dataclass(frozen=True)
class EpochWrite:
    """One slot's finished epoch, as ``record_epochs`` stores it."""

    claim: Claim
    record: dict[str, Any]
    summary: TrialSummary | None = None


def record_epoch(
    db: Database, claim: Claim, record: dict[str, Any], *, summary: TrialSummary | None = None
) -> EpochAck:
    """Store one epoch (losslessly) and the running summary, and beat the heartbeat, in one
    short transaction (``record_epochs`` for one slot)."""
    return record_epochs(db, [EpochWrite(claim, record, summary)])[0]


def record_epochs(db: Database, writes: Sequence[EpochWrite]) -> list[EpochAck]:
    """Store the finished epochs of several slots (a pack's members after one epoch), each
    slot's running summary and heartbeat with it, in ONE transaction; one ack per write,
    in order. Each write is conditional on its own slot (``_update_ours``): a slot taken
    away is acked not owned and stores nothing, the others land. The study's cancel flag
    and count of COMPLETE slots are read in the same transaction."""
    acks: list[EpochAck] = []
    with db.session() as session:
        owned: list[bool] = []
        rows: list[EpochRow] = []
        for write in writes:
            epoch = int(write.record["epoch"])
            values: dict[str, Any] = {"epochs_done": epoch, "heartbeat_at": utcnow()}
            if write.summary is not None:
                values["summary"] = write.summary
            mine = _update_ours(session, write.claim, **values)
            owned.append(mine)
            if mine:
                rows.append(
                    EpochRow(
                        trial_id=write.claim.trial_id,
                        attempt=write.claim.attempt,
                        epoch=epoch,
                        record=write.record,
                    )
                )
        # Added after the updates: one flush inserts them all (each update would flush one).
        session.add_all(rows)
        studies = {w.claim.study_id for w, mine in zip(writes, owned, strict=True) if mine}
        flags = _study_flags(session, studies)
        for write, mine in zip(writes, owned, strict=True):
            if not mine:
                acks.append(EpochAck(owned=False, cancel_requested=False))
                continue
            cancelled, complete = flags[write.claim.study_id]
            acks.append(
                EpochAck(owned=True, cancel_requested=cancelled, complete_in_study=complete)
            )
    return acks


def _study_flags(session: Session, study_ids: set[int]) -> dict[int, tuple[bool, int]]:
    """Each study's (cancel requested, slots finished COMPLETE), in one query."""
    if not study_ids:
        return {}
    complete = (
        select(func.count(TrialRow.id))
        .where(TrialRow.study_id == StudyRow.id, TrialRow.state == TrialState.COMPLETE)
        .scalar_subquery()
    )
    rows = session.execute(
        select(StudyRow.id, StudyRow.cancel_requested, complete).where(StudyRow.id.in_(study_ids))
    )
    return {study_id: (bool(cancelled), int(count)) for study_id, cancelled, count in rows}


def finish(
    db: Database,
    claim: Claim,
    *,
    state: TrialState,
    error: str | None = None,
    stop_reason: str | None = None,
    label: str | None = None,
    confidence: float | None = None,
    diagnosis: dict[str, Any] | None = None,
    summary: TrialSummary | None = None,
) -> bool:
    """Store the attempt's outcome; False if the slot was taken away meanwhile."""
    if not state.finished:
        raise ValueError(f"finish() needs a finished state, got {state}")
    now = utcnow()
    with db.session() as session:
        finished = _update_ours(
            session,
            claim,
            state=state,
            finished_at=now,
            heartbeat_at=None,
            error=error,
            stop_reason=stop_reason,
            label=label,
            confidence=confidence,
            diagnosis=diagnosis,
            summary=summary,
        )
        if not finished:
            return False
        _add_to_history(session, claim, state=state, finished_at=now, error=error)
        session.execute(
            update(WorkerRow)
            .where(WorkerRow.name == claim.worker)
            .values(
                trials_done=WorkerRow.trials_done + 1,
                # Cleared only when it names this slot: a packed worker's other members run on.
                current_trial_id=case(
                    (WorkerRow.current_trial_id == claim.trial_id, None),
                    else_=WorkerRow.current_trial_id,
                ),
                last_seen_at=now,
            )
        )
    return True


def release(db: Database, claim: Claim, *, reason: str) -> bool:
    """Hand a slot back to the queue (its worker is shutting down) without using a retry.

    The next attempt reuses the attempt number. The attempt's epoch rows are kept under it:
    the next attempt resumes from them and the worker's epoch state, or drops them when it
    starts afresh (``studies.resume``, ``continue_epochs``); the attempt stays in the history
    with *reason*.
    """
    with db.session() as session:
        released = _update_ours(
            session,
            claim,
            state=TrialState.WAITING,
            worker=None,
            heartbeat_at=None,
            optuna_trial_id=None,
            epochs_done=0,
            summary=None,
            attempt=TrialRow.attempt - 1,
        )
        if not released:
            return False
        _add_to_history(
            session,
            claim,
            state=TrialState.FAILED,
            finished_at=utcnow(),
            error=f"released: {reason}",
        )
        # Its study was cancelled meanwhile: the slot ends instead of waiting forever.
        end_waiting_if_cancelled(session, TrialRow.id == claim.trial_id)
    return True


def record_lr_range(db: Database, claim: Claim, lr_range: dict[str, Any]) -> bool:
    """Store an LR range test's result on its slot (``TrialRow.lr_range``); False if the
    slot was taken away."""
    with db.session() as session:
        return _update_ours(session, claim, lr_range=lr_range, heartbeat_at=utcnow())


def _add_to_history(
    session: Session, claim: Claim, *, state: TrialState, finished_at: datetime, error: str | None
) -> None:
    """Record the attempt *claim* held as ended in *state* (after `_update_ours` succeeded:
    the slot's Optuna trial number and claim time are still the attempt's)."""
    optuna_number, claimed_at = session.execute(
        select(TrialRow.optuna_trial_number, TrialRow.claimed_at).where(
            TrialRow.id == claim.trial_id
        )
    ).one()
    held = HeldAttempt(claim.trial_id, claim.attempt, claim.worker, optuna_number, claimed_at)
    session.add(ended_attempt(held, state=state, finished_at=finished_at, error=error))
