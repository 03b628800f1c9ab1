"""The reconciler: Optuna's trial states brought in line with the queue's.

The queue (``studies.queue``) is the truth about every slot; Optuna's trials follow it, but
each Optuna write happens after the queue's commit that decided it (the reaper's, a
cancellation's, a worker's ``finish``), and such a write can be lost: the database went
away for a moment, the process died between the two. Nothing retries those writes, so
without this an Optuna trial could stay RUNNING or WAITING forever (the dashboard showing a
trial that no worker runs, Optuna's samplers counting it as running). ``reconcile`` makes
them good, and is safe to run as often as wanted (``serve`` runs it periodically):

- the waiting slots of cancelled studies end (a slot reaped or handed back just after its
  study was cancelled could otherwise wait forever; ``queue.end_waiting_if_cancelled``);
- an unfinished Optuna trial of a slot that finished (its worker wrote the result but never
  told Optuna) gets the slot's outcome: COMPLETE with the stored objective, PRUNED, FAIL;
- a RUNNING Optuna trial that no slot's current attempt holds (a reaped or released
  attempt's, a start abandoned after an error) is failed;
- given the artifacts folder, the epoch states and running checkpoints of slots that are
  finished or gone are deleted (``resume.sweep``; a worker killed mid-trial left them).

Both of the last two wait first, so a worker's own write in flight is never overtaken: a
finished slot is settled once its worker's grace has passed since it finished, an orphaned
trial once twice the largest grace of its study's workers has passed since it started (a
worker records its new trial within its grace, or is reaped).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState
from sqlalchemy import select

from studies import optuna_bridge, queue
from studies.db import DEFAULT_STALE_AFTER_S, Database, StudyRow, TrialRow, TrialState, utcnow
from studies.results import TrialSummary

__all__ = ["Reconciled", "reconcile"]

log = logging.getLogger(__name__)

# The Optuna state each finished slot state stands for.
_OPTUNA_STATE = {
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.FAILED: OptunaState.FAIL,
}


@dataclass(frozen=True)
class Reconciled:
    """One Optuna trial closed to match the queue."""

    study_id: int
    optuna_trial_number: int
    state: OptunaState
    reason: str


@dataclass(frozen=True)
class _Slot:
    state: TrialState
    stale_after_s: float
    finished_at: datetime | None
    summary: TrialSummary | None


def reconcile(
    db: Database, *, now: datetime | None = None, artifacts_dir: Path | None = None
) -> list[Reconciled]:
    """End cancelled studies' waiting slots, then close every Optuna trial the queue says
    is over. *now* (default: this moment) may be set later to skip the waits (tests).
    *artifacts_dir*: also delete the slot files there that nothing will continue
    (``resume.sweep``), so a killed worker's do not wait for another trial's end."""
    now = now if now is not None else utcnow()
    if artifacts_dir is not None:
        from studies import resume  # imports the trainer (torch): only where files are swept

        swept = resume.sweep(db, artifacts_dir)
        if swept:
            log.info("reconciler: deleted %d file(s) of finished or deleted trials", swept)
    with db.session() as session:
        ended = queue.end_waiting_if_cancelled(session)
        studies = session.execute(select(StudyRow.id, StudyRow.optuna_study_name)).all()
    if ended:
        log.warning("reconciler: ended %d waiting slot(s) of cancelled studies", ended)
    closed: list[Reconciled] = []
    for study_id, study_name in studies:
        closed.extend(_reconcile_study(db, study_id, study_name, now))
    for item in closed:
        log.warning("reconciler: %s", item)
    return closed


def _reconcile_study(
    db: Database, study_id: int, study_name: str, now: datetime
) -> list[Reconciled]:
    storage = optuna_bridge.optuna_storage(db.url)
    open_trials = storage.get_all_trials(
        storage.get_study_id_from_name(study_name),
        deepcopy=False,
        states=(OptunaState.RUNNING, OptunaState.WAITING),
    )
    if not open_trials:
        return []
    with db.session() as session:
        rows = session.execute(
            select(
                TrialRow.optuna_trial_id,
                TrialRow.state,
                TrialRow.stale_after_s,
                TrialRow.finished_at,
                TrialRow.summary,
            ).where(TrialRow.study_id == study_id)
        ).all()
    slots = {
        row.optuna_trial_id: _Slot(row.state, row.stale_after_s, row.finished_at, row.summary)
        for row in rows
        if row.optuna_trial_id is not None
    }
    # Twice the largest grace of THIS study's workers (the module docstring's contract), not
    # at least the default's: a study run by workers with an 8 s grace had its orphaned trial
    # waited on for 60 s (CI's chaos round, seed 3, where the study had long ended).
    grace_s = max((row.stale_after_s for row in rows), default=DEFAULT_STALE_AFTER_S)
    closed = []
    for trial in open_trials:
        verdict = _verdict(trial, slots.get(trial._trial_id), now=now, grace_s=grace_s)
        if verdict is None:
            continue
        state, value, reason = verdict
        if optuna_bridge.close_trial(db.url, trial._trial_id, state, value):
            closed.append(Reconciled(study_id, trial.number, state, reason))
    return closed


def _verdict(
    trial: FrozenTrial, slot: _Slot | None, *, now: datetime, grace_s: float
) -> tuple[OptunaState, float | None, str] | None:
    """What an unfinished Optuna trial should become (state, value, why), or None: leave it."""
    if slot is None:
        if trial.state != OptunaState.RUNNING:
            return None  # an enqueued point no slot names is not the queue's to judge
        # Optuna stamps trials with naive local time; astimezone reads it as such.
        started = trial.datetime_start
        if started is not None and now - started.astimezone(UTC) < timedelta(seconds=2 * grace_s):
            return None  # maybe a worker's start in flight
        return OptunaState.FAIL, None, "running, but no slot's current attempt holds it"
    if not slot.state.finished:
        return None  # waiting to start, or running: its worker writes it
    settled = slot.finished_at is None or now - slot.finished_at > timedelta(
        seconds=slot.stale_after_s
    )
    if not settled:
        return None  # its worker's own tell may be in flight
    state = _OPTUNA_STATE[slot.state]
    value = slot.summary.objective_value if slot.summary is not None else None
    if state == OptunaState.COMPLETE and value is None:
        state = OptunaState.PRUNED  # what a worker tells for a run without a finite value
    return state, value, f"its slot is {slot.state.value}"
