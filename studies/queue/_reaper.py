"""The reaper: the slots of workers that stopped beating are failed and re-queued.

Each running slot carries the heartbeat grace of the worker that claimed it
(``stale_after_s``, written at the claim), and is judged by that grace alone: a worker
started with a longer grace than the reaping process's is never reaped early, whatever the
reaper's own settings. A slot whose heartbeat is older than its grace is taken from its
worker by one conditional ``UPDATE`` (still running, same attempt, heartbeat still that old:
it may have beaten since it was looked at) whose row count says whether this reaper won.
The attempt is kept in ``sweepdoc_attempts`` as failed, its Optuna trial is marked FAIL, and
the slot waits again until it has had ``MAX_ATTEMPTS`` attempts, after which it stays
failed; a slot of a cancelled study ends instead of waiting. The Optuna write comes after
the commit; when it fails, ``studies.reconcile`` closes the Optuna trial later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from studies import optuna_bridge
from studies.db import Database, TrialRow, TrialState, utcnow
from studies.queue._sql import HeldAttempt, ended_attempt, rowcount
from studies.queue._studies import end_waiting_if_cancelled

log = logging.getLogger(__name__)

# Attempts per slot in all (the first run and two retries after dead workers).
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Reaped:
    trial_id: int
    attempt: int
    worker: str | None
    requeued: bool  # False: no attempt left (failed), or its study was cancelled (pruned)


def reap_stale(
    db: Database, *, now: datetime | None = None, max_attempts: int = MAX_ATTEMPTS
) -> list[Reaped]:
    """Fail the attempts of workers that stopped beating and re-queue their slots.

    A slot is stale once its heartbeat is older than its own worker's grace as of *now*
    (default: this moment; a later time makes every running slot with an older deadline
    stale, which tests use instead of waiting).
    """
    now = now if now is not None else utcnow()
    with db.session() as session:
        # Whole rows: running slots are few (one per live worker), and a typed row reads
        # better than a column tuple; they stay readable after the session (no expiry).
        running = session.scalars(
            select(TrialRow).where(TrialRow.state == TrialState.RUNNING)
        ).all()
    reaped = []
    for row in running:
        # Running slots are few (one per live worker): each is judged by its own grace here
        # rather than by date arithmetic in SQL, which SQLite and PostgreSQL spell apart.
        cutoff = now - timedelta(seconds=row.stale_after_s)
        if row.heartbeat_at is not None and row.heartbeat_at >= cutoff:
            continue
        item = _reap_one(db, row, cutoff=cutoff, now=now, max_attempts=max_attempts)
        if item is not None:
            reaped.append(item)
    return reaped


def _reap_one(
    db: Database, row: TrialRow, *, cutoff: datetime, now: datetime, max_attempts: int
) -> Reaped | None:
    requeue = row.attempt < max_attempts
    error = _stale_message(
        row.worker, row.heartbeat_at, row.stale_after_s, row.attempt, max_attempts
    )
    with db.session() as session:
        result = session.execute(
            update(TrialRow)
            .where(
                TrialRow.id == row.id,
                TrialRow.state == TrialState.RUNNING,
                TrialRow.attempt == row.attempt,
                # It may have beaten since we looked (a NULL heartbeat never has).
                (TrialRow.heartbeat_at < cutoff) | TrialRow.heartbeat_at.is_(None),
            )
            .values(
                state=TrialState.WAITING if requeue else TrialState.FAILED,
                worker=None if requeue else row.worker,
                heartbeat_at=None,
                # The retry gets a fresh Optuna trial (start_attempt records it).
                optuna_trial_id=None if requeue else row.optuna_trial_id,
                finished_at=None if requeue else now,
                error=None if requeue else error,
                epochs_done=0 if requeue else TrialRow.epochs_done,
            )
            .execution_options(synchronize_session=False)
        )
        if rowcount(result) != 1:
            return None
        held = HeldAttempt.of(row)
        session.add(ended_attempt(held, finished_at=now, error=error, state=TrialState.FAILED))
        ended = requeue and end_waiting_if_cancelled(session, TrialRow.id == row.id) == 1
    log.warning("reaped trial %s (attempt %s): %s", row.id, row.attempt, error)
    if row.optuna_trial_id is not None:
        optuna_bridge.fail_trial(db.url, row.optuna_trial_id)
    return Reaped(row.id, row.attempt, row.worker, requeue and not ended)


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
        f"worker {worker} stopped beating its heartbeat (last at {seen}, more than its "
        f"grace of {stale_after_s:g} s ago): attempt {attempt} failed; {verdict}"
    )
