"""The reaper: the slots of workers that stopped beating are failed and re-queued.

A running slot whose heartbeat is older than ``stale_after_s`` is taken from its worker by
one conditional ``UPDATE`` (still running, same attempt, heartbeat still old: it may have
beaten since it was looked at) whose row count says whether this reaper won. The attempt is
kept in ``sweepdoc_attempts`` as failed, its Optuna trial is marked FAIL, and the slot
waits again until it has had ``MAX_ATTEMPTS`` attempts, after which it stays failed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from studies import optuna_bridge
from studies.db import AttemptRow, Database, TrialRow, TrialState, utcnow
from studies.queue._sql import rowcount

log = logging.getLogger(__name__)

# Attempts per slot in all (the first run and two retries after dead workers).
MAX_ATTEMPTS = 3


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
            if rowcount(result) != 1:
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
