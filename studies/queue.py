"""The durable queue: claiming slots exactly once, heartbeats, the reaper, cancellation.

Every state change is one short transaction whose ``WHERE`` clause states what must still
be true (the slot is waiting; the slot is still ours), and whose row count says whether it
happened. That is all exactly-once needs:

- SQLite serializes writers, so a conditional ``UPDATE`` is evaluated under the write lock;
  nothing depends on ``SELECT … FOR UPDATE``, which SQLite ignores.
- PostgreSQL re-checks the ``WHERE`` of an ``UPDATE`` that waited on a concurrent one, so
  two workers can never both flip the same slot from waiting to running; the study row is
  locked (``FOR UPDATE``) first so ``max_parallel`` is counted after the previous claim
  committed.

Heartbeat and reaper. A running slot's worker updates ``heartbeat_at`` every
``heartbeat_interval_s`` (5 s by default) from a background thread, so long epochs do not
look dead. Workers and the API (``store.reap_stale_trials``, run periodically) run
``reap_stale``: a running slot whose heartbeat is older than ``stale_after_s`` (30 s by
default) is taken from its worker; the attempt is recorded as failed (its Optuna trial is
marked FAIL) and the slot is re-queued, up to ``MAX_ATTEMPTS`` attempts in all, after which
the slot stays failed. Every live worker reaps at most every ``heartbeat_interval_s``, from
its poll loop when idle and from its heartbeat thread while training, so a killed worker's
trial is failed and re-queued within ``stale_after_s + heartbeat_interval_s`` (35 s by
default) as long as one worker or the API is running.
Timestamps come from the processes' clocks in UTC: keep hosts NTP-synchronized, and keep
``stale_after_s`` well above the worst clock skew.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, exists, func, select, update
from sqlalchemy.orm import aliased

from studies import optuna_bridge
from studies.db import (
    AttemptRow,
    Database,
    EpochRow,
    StudyRow,
    StudyStatus,
    TrialRow,
    TrialState,
    WorkerRow,
    utcnow,
)
from studies.spec import StudySpec

log = logging.getLogger(__name__)

# Attempts per slot in all (the first run and two retries after dead workers).
MAX_ATTEMPTS = 3
# Waiting slots looked at per claim round; more than one so a lost race tries the next.
_CLAIM_CANDIDATES = 8


@dataclass(frozen=True)
class Claim:
    """A slot this worker won: everything needed to run it."""

    trial_id: int
    study_id: int
    number: int
    attempt: int
    worker: str
    params: dict[str, Any] | None  # None: a fresh random/tpe slot, the sampler picks
    enqueued_optuna_trial_id: int | None  # a grid slot's WAITING Optuna trial, first attempt
    optuna_study_name: str
    spec: StudySpec


def _rowcount(result: Any) -> int:
    return cast(CursorResult[Any], result).rowcount


def _running_in_study(study_id: Any) -> Any:
    other = aliased(TrialRow)
    return (
        select(func.count(other.id))
        .where(other.study_id == study_id, other.state == TrialState.RUNNING)
        .scalar_subquery()
    )


def claim_next(db: Database, *, worker: str, device: str) -> Claim | None:
    """Claim the next waiting slot (priority, then submission order), or None."""
    with db.session() as session:
        candidates = session.execute(
            select(TrialRow.id, TrialRow.study_id)
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(
                TrialRow.state == TrialState.WAITING,
                StudyRow.cancel_requested.is_(False),
                _running_in_study(StudyRow.id) < StudyRow.max_parallel,
            )
            .order_by(StudyRow.priority.desc(), StudyRow.created_at, StudyRow.id, TrialRow.number)
            .limit(_CLAIM_CANDIDATES)
        ).all()
    for trial_id, study_id in candidates:
        if _try_claim(db, trial_id, study_id, worker=worker, device=device):
            return _load_claim(db, trial_id, worker)
    return None


def _try_claim(db: Database, trial_id: int, study_id: int, *, worker: str, device: str) -> bool:
    now = utcnow()
    with db.session() as session:
        if db.is_postgres:
            # Serialize claims within one study so the running count below is current.
            session.execute(select(StudyRow.id).where(StudyRow.id == study_id).with_for_update())
        max_parallel = (
            select(StudyRow.max_parallel).where(StudyRow.id == study_id).scalar_subquery()
        )
        not_cancelled = exists(
            select(StudyRow.id).where(StudyRow.id == study_id, StudyRow.cancel_requested.is_(False))
        )
        result = session.execute(
            update(TrialRow)
            .where(
                TrialRow.id == trial_id,
                TrialRow.state == TrialState.WAITING,
                not_cancelled,
                _running_in_study(study_id) < max_parallel,
            )
            .values(
                state=TrialState.RUNNING,
                worker=worker,
                device=device,
                attempt=TrialRow.attempt + 1,
                claimed_at=now,
                heartbeat_at=now,
                finished_at=None,
                error=None,
                stop_reason=None,
                epochs_done=0,
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1


def _load_claim(db: Database, trial_id: int, worker: str) -> Claim:
    with db.session() as session:
        trial = session.get_one(TrialRow, trial_id)
        study = session.get_one(StudyRow, trial.study_id)
        return Claim(
            trial_id=trial.id,
            study_id=study.id,
            number=trial.number,
            attempt=trial.attempt,
            worker=worker,
            params=trial.params,
            enqueued_optuna_trial_id=trial.optuna_trial_id,
            optuna_study_name=study.optuna_study_name,
            spec=StudySpec.model_validate(study.spec),
        )


def _ours(claim: Claim) -> Any:
    return and_(
        TrialRow.id == claim.trial_id,
        TrialRow.state == TrialState.RUNNING,
        TrialRow.worker == claim.worker,
        TrialRow.attempt == claim.attempt,
    )


def start_attempt(
    db: Database,
    claim: Claim,
    *,
    params: dict[str, Any],
    optuna_trial_id: int,
    optuna_trial_number: int,
) -> bool:
    """Record the attempt's parameters and Optuna trial; False if the slot was taken away."""
    with db.session() as session:
        result = session.execute(
            update(TrialRow)
            .where(_ours(claim))
            .values(
                params=params,
                optuna_trial_id=optuna_trial_id,
                optuna_trial_number=optuna_trial_number,
                heartbeat_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        return _rowcount(result) == 1


def beat(db: Database, claim: Claim) -> bool:
    """Refresh the slot's heartbeat; False if the slot is no longer ours (reaped)."""
    now = utcnow()
    with db.session() as session:
        result = session.execute(
            update(TrialRow)
            .where(_ours(claim))
            .values(heartbeat_at=now)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(WorkerRow).where(WorkerRow.name == claim.worker).values(last_seen_at=now)
        )
        return _rowcount(result) == 1


@dataclass(frozen=True)
class EpochAck:
    owned: bool  # False: the slot was reaped; stop without telling Optuna
    cancel_requested: bool


def record_epoch(
    db: Database, claim: Claim, record: dict[str, Any], *, summary: dict[str, Any] | None = None
) -> EpochAck:
    """Store one epoch (losslessly) and the running summary, and beat the heartbeat, in one
    short transaction."""
    epoch = int(record["epoch"])
    with db.session() as session:
        values: dict[str, Any] = {"epochs_done": epoch, "heartbeat_at": utcnow()}
        if summary is not None:
            values["summary"] = summary
        result = session.execute(
            update(TrialRow)
            .where(_ours(claim))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return EpochAck(owned=False, cancel_requested=False)
        session.add(
            EpochRow(trial_id=claim.trial_id, attempt=claim.attempt, epoch=epoch, record=record)
        )
        cancelled = session.scalar(
            select(StudyRow.cancel_requested).where(StudyRow.id == claim.study_id)
        )
    return EpochAck(owned=True, cancel_requested=bool(cancelled))


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
    summary: dict[str, Any] | None = None,
) -> bool:
    """Store the attempt's outcome; False if the slot was taken away meanwhile."""
    if not state.finished:
        raise ValueError(f"finish() needs a finished state, got {state}")
    now = utcnow()
    with db.session() as session:
        result = session.execute(
            update(TrialRow)
            .where(_ours(claim))
            .values(
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
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return False
        optuna_number = session.scalar(
            select(TrialRow.optuna_trial_number).where(TrialRow.id == claim.trial_id)
        )
        session.add(
            AttemptRow(
                trial_id=claim.trial_id,
                attempt=claim.attempt,
                state=state,
                worker=claim.worker,
                optuna_trial_number=optuna_number,
                finished_at=now,
                error=error,
            )
        )
        session.execute(
            update(WorkerRow)
            .where(WorkerRow.name == claim.worker)
            .values(trials_done=WorkerRow.trials_done + 1, current_trial_id=None, last_seen_at=now)
        )
    return True


def release(db: Database, claim: Claim, *, reason: str) -> bool:
    """Hand a slot back to the queue (its worker is shutting down) without using a retry.

    The attempt's epochs are dropped (the next attempt starts from scratch and reuses the
    attempt number); the attempt stays in the history with *reason*.
    """
    with db.session() as session:
        optuna_number = session.scalar(
            select(TrialRow.optuna_trial_number).where(TrialRow.id == claim.trial_id)
        )
        result = session.execute(
            update(TrialRow)
            .where(_ours(claim))
            .values(
                state=TrialState.WAITING,
                worker=None,
                heartbeat_at=None,
                optuna_trial_id=None,
                epochs_done=0,
                summary=None,
                attempt=TrialRow.attempt - 1,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) != 1:
            return False
        session.execute(
            delete(EpochRow).where(
                EpochRow.trial_id == claim.trial_id, EpochRow.attempt == claim.attempt
            )
        )
        session.add(
            AttemptRow(
                trial_id=claim.trial_id,
                attempt=claim.attempt,
                state=TrialState.FAILED,
                worker=claim.worker,
                optuna_trial_number=optuna_number,
                finished_at=utcnow(),
                error=f"released: {reason}",
            )
        )
    return True


@dataclass(frozen=True)
class Reaped:
    trial_id: int
    attempt: int
    worker: str | None
    requeued: bool


def reap_stale(
    db: Database, *, stale_after_s: float, max_attempts: int = MAX_ATTEMPTS
) -> list[Reaped]:
    """Fail the attempts of workers that stopped beating and re-queue their slots."""
    now = utcnow()
    cutoff = now - timedelta(seconds=stale_after_s)
    with db.session() as session:
        stale = session.execute(
            select(
                TrialRow.id,
                TrialRow.attempt,
                TrialRow.worker,
                TrialRow.heartbeat_at,
                TrialRow.claimed_at,
                TrialRow.optuna_trial_id,
                TrialRow.optuna_trial_number,
            ).where(TrialRow.state == TrialState.RUNNING, TrialRow.heartbeat_at < cutoff)
        ).all()
    reaped = []
    for trial_id, attempt, worker, heartbeat_at, claimed_at, optuna_id, optuna_number in stale:
        requeue = attempt < max_attempts
        error = _stale_message(worker, heartbeat_at, stale_after_s, attempt, max_attempts)
        with db.session() as session:
            result = session.execute(
                update(TrialRow)
                .where(
                    TrialRow.id == trial_id,
                    TrialRow.state == TrialState.RUNNING,
                    TrialRow.attempt == attempt,
                    TrialRow.heartbeat_at < cutoff,  # it may have beaten since we looked
                )
                .values(
                    state=TrialState.WAITING if requeue else TrialState.FAILED,
                    worker=None if requeue else worker,
                    heartbeat_at=None,
                    # The retry gets a fresh Optuna trial (start_attempt records it).
                    optuna_trial_id=None if requeue else optuna_id,
                    finished_at=None if requeue else now,
                    error=None if requeue else error,
                    epochs_done=0 if requeue else TrialRow.epochs_done,
                )
                .execution_options(synchronize_session=False)
            )
            if _rowcount(result) != 1:
                continue
            session.add(
                AttemptRow(
                    trial_id=trial_id,
                    attempt=attempt,
                    state=TrialState.FAILED,
                    worker=worker,
                    optuna_trial_number=optuna_number,
                    claimed_at=claimed_at,
                    finished_at=now,
                    error=error,
                )
            )
        log.warning("reaped trial %s (attempt %s): %s", trial_id, attempt, error)
        if optuna_id is not None:
            optuna_bridge.fail_trial(db.url, optuna_id)
        reaped.append(Reaped(trial_id, attempt, worker, requeue))
    return reaped


def _stale_message(
    worker: str | None,
    heartbeat_at: datetime | None,
    stale_after_s: float,
    attempt: int,
    max_attempts: int,
) -> str:
    seen = heartbeat_at.isoformat() if heartbeat_at else "never"
    verdict = (
        "the slot was re-queued"
        if attempt < max_attempts
        else f"no retry left ({max_attempts} attempts)"
    )
    return (
        f"worker {worker} stopped beating its heartbeat (last at {seen}, more than "
        f"{stale_after_s:g} s ago): attempt {attempt} failed; {verdict}"
    )


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
        # A slot that never ran ends as pruned: stopped early, by the user, not an error.
        session.execute(
            update(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.state == TrialState.WAITING)
            .values(
                state=TrialState.PRUNED, finished_at=now, stop_reason="cancelled before it started"
            )
            .execution_options(synchronize_session=False)
        )
    return [i for i in waiting_optuna if i is not None]


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


def touch_worker(
    db: Database, *, name: str, host: str, pid: int, device: str, current_trial_id: int | None
) -> None:
    """Record that a worker is alive (readiness counts workers seen recently)."""
    now = utcnow()
    with db.session() as session:
        row = session.get(WorkerRow, name)
        if row is None:
            session.add(
                WorkerRow(
                    name=name,
                    host=host,
                    pid=pid,
                    device=device,
                    started_at=now,
                    last_seen_at=now,
                    current_trial_id=current_trial_id,
                )
            )
        else:
            if (row.host, row.pid) != (host, pid):
                # Another process took the name (a restarted local worker keeps its slot's
                # name): the row describes the new process from now on.
                row.host, row.pid, row.started_at = host, pid, now
            row.last_seen_at = now
            row.current_trial_id = current_trial_id
            row.device = device
