"""External runs in the database: create, read, list, finish, diagnose (``log_epoch`` is in
``_epochs``). Each function is a few short transactions and returns response models.

Order of writes: a run's Optuna trial is created before its row (a failed insert closes it
again as FAIL); an ending is committed to the row first and then written to Optuna, and a
repeated call repeats the Optuna writes, so a lost one is made good by the client's retry.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from studies import optuna_bridge
from studies.db import Database, RunEpochRow, RunRow, RunState, utcnow
from studies.diagnosis import Curves, Diagnosis, diagnose_run
from studies.errors import ConflictError, NotFoundError
from studies.results import Candidate, RunFacts, TrialSummary, best_trial, summarize
from studies.runs import _optuna
from studies.runs._schemas import RunCreate, RunDetail, RunPublic
from studies.schemas import Page, from_row
from studies.spec import Objective
from trainer import finite_or_none
from trainer._curves import METRIC_KEYS

log = logging.getLogger(__name__)


def create_run(db: Database, body: RunCreate) -> RunPublic:
    """A new RUNNING run of *body*'s project (its Optuna study created on the first run)."""
    trial_id, number = _optuna.start_trial(
        db.url,
        project=body.project,
        run_name=body.name,
        objective=body.objective,
        params=body.params,
    )
    try:
        with db.session() as session:
            row = RunRow(
                project=body.project,
                name=body.name,
                optuna_study_name=_optuna.study_name(body.project),
                optuna_trial_id=trial_id,
                optuna_trial_number=number,
                objective=body.objective,
                params=body.params,
                num_classes=body.num_classes,
                state=RunState.RUNNING,
                epochs_done=0,
            )
            session.add(row)
    except BaseException:
        optuna_bridge.fail_trial(db.url, trial_id)  # no run owns it: never leave it RUNNING
        raise
    with optuna_writes(db, row.id):  # a DELETE guessing the new id may come first
        _optuna.mark_run(db.url, trial_id, row.id)
    return run_public(row)


def run_row(session: Session, run_id: int, *, lock: bool = False) -> RunRow:
    """The run's row (*lock*: locked for this transaction on PostgreSQL; SQLite's writer
    lock is one per database); NotFoundError → 404."""
    row = session.get(RunRow, run_id, with_for_update=lock)
    if row is None:
        raise NotFoundError(f"run {run_id} does not exist")
    return row


def epoch_values(session: Session, run_id: int) -> list[dict[str, float]]:
    """The run's epochs' values, in epoch order (NaN for non-finite values)."""
    rows = session.scalars(
        select(RunEpochRow.values).where(RunEpochRow.run_id == run_id).order_by(RunEpochRow.epoch)
    )
    return list(rows)


def run_curves(row: RunRow, values: list[dict[str, float]]) -> dict[str, Any]:
    """The curves JSON of *values*: only the metrics the run logs (a curve it never sent is
    absent, not a list of nulls, which would read as a diverged loss)."""
    curves: dict[str, Any] = {
        key: [finite_or_none(epoch.get(key)) for epoch in values] for key in row.metrics or ()
    }
    if row.num_classes is not None:
        curves["num_classes"] = row.num_classes
    return curves


def run_summary(row: RunRow, values: list[dict[str, float]]) -> TrialSummary:
    """The summary numbers of *values*, as a trial's (a metric the run does not log is NaN)."""
    records = [
        {"epoch": epoch, **{key: values_of.get(key, math.nan) for key in METRIC_KEYS}}
        for epoch, values_of in enumerate(values, start=1)
    ]
    return summarize(
        records,
        facts=RunFacts(num_classes=row.num_classes),
        maximize=row.objective is Objective.VAL_ACC,
    )


def run_public(row: RunRow) -> RunPublic:
    summary = row.summary or TrialSummary()
    return from_row(
        RunPublic,
        row,
        metrics=row.metrics or [],
        final_val_acc=summary.final_val_acc,
        best_val_acc=summary.best_val_acc,
        final_val_loss=summary.final_val_loss,
    )


def get_run(db: Database, run_id: int) -> RunDetail:
    """One run with its curves and diagnosis."""
    with db.session() as session:
        row = run_row(session, run_id)
        values = epoch_values(session, run_id)
    public = run_public(row)
    best_epoch = row.summary.best_epoch if row.summary is not None else None
    return RunDetail.model_validate(
        {
            **public.model_dump(exclude={"url"}),
            "best_epoch": best_epoch,
            "curves": run_curves(row, values),
            "diagnosis": row.diagnosis,
        }
    )


def list_runs(
    db: Database, *, project: str | None = None, offset: int = 0, limit: int = 50
) -> Page[RunPublic]:
    """Runs, newest first; only *project*'s when given."""
    where = [] if project is None else [RunRow.project == project]
    with db.session() as session:
        count = session.scalar(select(func.count()).select_from(RunRow).where(*where)) or 0
        rows = session.scalars(
            select(RunRow)
            .where(*where)
            .order_by(RunRow.created_at.desc(), RunRow.id.desc())
            .offset(offset)
            .limit(limit)
        ).all()
    return Page[RunPublic](data=[run_public(row) for row in rows], count=count)


def finish_run(db: Database, run_id: int) -> RunPublic:
    """End a running run as COMPLETE with its full diagnosis; a run that already ended is
    returned as it is (finishing twice is safe). 409 for a run without epochs."""
    with db.session() as session:
        row = run_row(session, run_id, lock=True)
        if row.state is RunState.RUNNING:
            if row.epochs_done == 0:
                raise ConflictError(
                    f"run {run_id} has no epochs to diagnose; log at least one "
                    f"(POST /v1/runs/{run_id}/epochs) before finishing it"
                )
            values = epoch_values(session, run_id)
            diagnosis = diagnose_run(
                Curves.model_validate(run_curves(row, values)),
                study_best_val_acc=_project_best_val_acc(session, row),
            )
            row.state = RunState.COMPLETE
            row.finished_at = utcnow()
            row.label = diagnosis.label
            row.confidence = diagnosis.confidence
            row.diagnosis = diagnosis.model_dump(mode="json")
    sync_ending(db, row)
    return run_public(row)


def _project_best_val_acc(session: Session, row: RunRow) -> float | None:
    """The best validation accuracy of the project's best run, this one counted as complete:
    the bar the diagnoser holds a run to (underfitting), as a trial's study sets it."""
    others = session.scalars(
        select(RunRow).where(
            RunRow.project == row.project, RunRow.state == RunState.COMPLETE, RunRow.id != row.id
        )
    ).all()
    runs = [(r.id, r.summary or TrialSummary()) for r in [*others, row]]
    best = best_trial(
        runs,
        maximize=row.objective is Objective.VAL_ACC,
        candidate=lambda run: Candidate(run[0], True, run[1].objective_value),
    )
    return best[1].best_val_acc if best is not None else None


@contextlib.contextmanager
def optuna_writes(db: Database, run_id: int) -> Iterator[None]:
    """The Optuna writes a request makes after committing to the run's row. A DELETE of the
    run in between removes its Optuna trial, and Optuna answers KeyError: the request then
    answers 404, as every later one to the deleted run does. A trial gone while its run
    stays (its project's Optuna study deleted by hand) loses only the dashboard's copy."""
    try:
        yield
    except KeyError:
        with db.session() as session:
            run_row(session, run_id)  # NotFoundError once the run is deleted
        log.warning("run %s: its Optuna trial is gone; the dashboard misses its results", run_id)


def sync_ending(db: Database, row: RunRow) -> None:
    """Write an ended run's verdict to its Optuna trial and close it (no-op once closed)."""
    if row.state is RunState.RUNNING or row.diagnosis is None:
        return
    with optuna_writes(db, row.id):
        _optuna.end_trial(
            db.url,
            row.optuna_trial_id,
            project=row.project,
            diagnosis=Diagnosis.model_validate(row.diagnosis),
            params=row.params,
            stopped=row.state is RunState.STOPPED,
            stop_reason=row.stop_reason,
            objective_value=row.summary.objective_value if row.summary is not None else None,
        )


def run_diagnosis(db: Database, run_id: int) -> Diagnosis:
    """The stored diagnosis of an ended run; for a running one, a provisional diagnosis of
    its epochs so far (409 before its first epoch)."""
    with db.session() as session:
        row = run_row(session, run_id)
        if row.diagnosis is not None:
            return Diagnosis.model_validate(row.diagnosis)
        if row.epochs_done == 0:
            raise ConflictError(f"run {run_id} has no epochs yet")
        values = epoch_values(session, run_id)
    return diagnose_run(Curves.model_validate(run_curves(row, values)))
