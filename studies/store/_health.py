"""Health: readiness (the database answers, workers were seen) and the API's reaper."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from studies import queue
from studies.db import DEFAULT_STALE_AFTER_S, Database, WorkerRow, utcnow
from studies.schemas import Readiness, WorkerPublic

__all__ = ["DEFAULT_STALE_AFTER_S", "database_unreachable", "readiness", "reap_stale_trials"]


def reap_stale_trials(db: Database) -> list[queue.Reaped]:
    """Fail and re-queue the trials of dead workers, each judged by its own worker's
    heartbeat grace (the API runs this periodically)."""
    return queue.reap_stale(db)


def database_unreachable(*, worker_window_s: float) -> Readiness:
    """The readiness report for a database that does not answer."""
    return Readiness(
        ready=False,
        database=False,
        workers_seen=0,
        worker_window_s=worker_window_s,
        workers=[],
        reason="the database does not answer",
    )


def readiness(
    db: Database, *, worker_window_s: float = 60.0, requires_worker: bool = True
) -> Readiness:
    """Ready when the database answers and, if *requires_worker*, a worker was seen within
    *worker_window_s*. Without the requirement (an API-only server: the queue is durable, so
    a study submitted before any worker runs waits for one) the workers are still listed."""
    if not db.ping():
        return database_unreachable(worker_window_s=worker_window_s)
    since = utcnow() - timedelta(seconds=worker_window_s)
    with db.session() as session:
        rows = list(
            session.scalars(
                select(WorkerRow).where(WorkerRow.last_seen_at >= since).order_by(WorkerRow.name)
            )
        )
    workers = [WorkerPublic.model_validate(w, from_attributes=True) for w in rows]
    ready = bool(workers) or not requires_worker
    return Readiness(
        ready=ready,
        database=True,
        workers_seen=len(workers),
        worker_window_s=worker_window_s,
        workers=workers,
        reason=None if ready else f"no worker seen in the last {worker_window_s:g} s",
    )
