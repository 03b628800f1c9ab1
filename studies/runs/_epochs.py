"""One epoch of an external run: stored once, checked live, answered with a verdict.

The live check is the worker's (``studies.diagnosis.live_check``, as ``studies.recorder``
runs it after every epoch of a trial): a run whose loss turned non-finite, exploded, or
collapsed to chance is told to stop, and ends as ``stopped``, labelled ``diverged``, its
Optuna trial PRUNED. Anything else continues.

An epoch is stored at most once (unique per run and epoch number): a resend with the same
values is answered with the verdict the first one got (a client may retry after a lost
answer); a resend with other values is a conflict; a gap in the numbering is refused.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from studies.db import Database, RunEpochRow, RunRow, RunState, utcnow
from studies.diagnosis import Curves, Diagnosis, live_check
from studies.errors import ConflictError, StudiesError
from studies.runs import _optuna
from studies.runs._schemas import Action, EpochLog, Verdict
from studies.runs._store import (
    epoch_values,
    optuna_writes,
    run_curves,
    run_row,
    run_summary,
    sync_ending,
)
from trainer import finite_or_none


class RunInputError(StudiesError):
    """An epoch that does not fit its run (a gap, other metrics than the first epoch's): the
    API answers 422 naming *field*."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def log_epoch(db: Database, run_id: int, body: EpochLog) -> Verdict:
    """Store one epoch of run *run_id*, report it to Optuna, answer continue or stop."""
    try:
        row, stored = _store_epoch(db, run_id, body)
    except IntegrityError:
        # The same epoch sent twice at once: the other request stored it; answer as a resend.
        row, stored = _store_epoch(db, run_id, body)
    objective = stored.values.get(row.objective.value)
    with optuna_writes(db, run_id):
        _optuna.report(db.url, row.optuna_trial_id, stored.epoch, objective)
    sync_ending(db, row)  # a stop ends the run: its Optuna trial too (repeated on resend)
    stopped = stored.stop_reason is not None
    return Verdict(
        run_id=run_id,
        epoch=stored.epoch,
        action=Action.STOP if stopped else Action.CONTINUE,
        reason=stored.stop_reason,
        state=row.state,
        diagnosis=Diagnosis.model_validate(row.diagnosis) if stopped and row.diagnosis else None,
    )


def _store_epoch(db: Database, run_id: int, body: EpochLog) -> tuple[RunRow, RunEpochRow]:
    """The run after *body*, and the epoch's row (the earlier one, for a resend)."""
    with db.session() as session:
        row = run_row(session, run_id, lock=True)
        earlier = session.scalar(
            select(RunEpochRow).where(RunEpochRow.run_id == run_id, RunEpochRow.epoch == body.epoch)
        )
        if earlier is not None:
            _check_resend(run_id, earlier, body)
            return row, earlier
        _check_fits(row, body)
        epoch = RunEpochRow(run_id=run_id, epoch=body.epoch, values=body.values())
        session.add(epoch)
        session.flush()  # a concurrent twin fails here, on the unique (run, epoch)
        if row.metrics is None:
            row.metrics = body.logged
        values = epoch_values(session, run_id)
        row.epochs_done = body.epoch
        row.summary = run_summary(row, values)
        live = live_check(Curves.model_validate(run_curves(row, values)))
        if live is not None:
            epoch.stop_reason = (
                f"stopped by the live divergence check at epoch {body.epoch}: {live.summary}"
            )
            row.state = RunState.STOPPED
            row.finished_at = utcnow()
            row.stop_reason = epoch.stop_reason
            row.label = live.label
            row.confidence = live.confidence
            row.diagnosis = live.model_dump(mode="json")
    return row, epoch


def _check_fits(row: RunRow, body: EpochLog) -> None:
    """Refuse an epoch that cannot follow the run's epochs so far."""
    if row.state is not RunState.RUNNING:
        raise ConflictError(
            f"run {row.id} is {row.state} ({row.stop_reason or 'finished'}) after epoch "
            f"{row.epochs_done}; it takes no more epochs: start a new run"
        )
    expected = row.epochs_done + 1
    if body.epoch != expected:
        raise RunInputError(
            "epoch",
            f"run {row.id} has {row.epochs_done} epochs, so the next is {expected}, not "
            f"{body.epoch} (epochs are numbered 1, 2, … without gaps)",
        )
    objective = row.objective.value
    if row.metrics is None and objective not in body.logged:
        raise RunInputError(
            objective,
            f"the run's objective is {objective}: log it every epoch (null when "
            f"non-finite), or create the run with another objective",
        )
    if row.metrics is not None and body.logged != row.metrics:
        missing = [key for key in row.metrics if key not in body.logged]
        extra = [key for key in body.logged if key not in row.metrics]
        field = (missing or extra)[0]
        said = "missing" if missing else "not logged in epoch 1"
        raise RunInputError(
            field,
            f"{said}; every epoch must carry the metrics of the first "
            f"({', '.join(row.metrics)}), with null for a non-finite value",
        )


def _check_resend(run_id: int, earlier: RunEpochRow, body: EpochLog) -> None:
    """A resent epoch must say what the first one said (non-finite values compare equal)."""
    before = {key: finite_or_none(value) for key, value in earlier.values.items()}
    now = {key: finite_or_none(value) for key, value in body.values().items()}
    if before != now:
        changed = sorted(
            key for key in before.keys() | now.keys() if before.get(key) != now.get(key)
        )
        raise ConflictError(
            f"epoch {body.epoch} of run {run_id} was already logged with other values "
            f"({', '.join(f'{key}: {before.get(key)} then {now.get(key)}' for key in changed)});"
            " a logged epoch cannot change"
        )
