"""The workers' own rows: who is alive, on which device, running what (``/readyz``)."""

from __future__ import annotations

from studies.db import Database, WorkerRow, utcnow


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
