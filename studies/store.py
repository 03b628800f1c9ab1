"""Everything the API and the CLI read or write, as plain functions over a Database.

Each function is a few short transactions and returns response models
(studies.schemas), never table rows.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from studies import optuna_bridge, plots, queue
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
from studies.errors import ConflictError, NotFoundError
from studies.optuna_bridge import optuna_storage
from studies.schemas import (
    AttemptPublic,
    BestTrial,
    Page,
    Readiness,
    StudyPublic,
    TrialDetail,
    TrialPublic,
    WorkerPublic,
)
from studies.spec import Objective, Sampler, StudySpec
from trainer import curves_json, finite_or_none

if TYPE_CHECKING:
    from studies.diagnosis import Diagnosis, StudySummary

__all__ = [
    "cancel_study",
    "count_unfinished_studies",
    "get_study",
    "get_trial",
    "list_studies",
    "list_trials",
    "optuna_storage",
    "readiness",
    "reap_stale_trials",
    "study_diagnosis",
    "study_lr_png",
    "submit_study",
    "trial_curves_png",
    "trial_diagnosis",
]

# A worker's trial is failed and re-queued once its heartbeat is older than this (seconds).
DEFAULT_STALE_AFTER_S = 30.0


def submit_study(db: Database, spec: StudySpec, *, artifacts_dir: Path) -> StudyPublic:
    """Queue a study: its Optuna study (grid points enqueued) and one slot per trial.

    The Optuna side is written first and the sweepdoc rows last, in one transaction, so a
    crash in between leaves at most an empty Optuna study no worker will ever see.
    """
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    name = spec.display_name
    optuna_name = f"{name}-{secrets.token_hex(4)}"
    optuna_bridge.create_study(db.url, optuna_name, spec)
    if spec.search.sampler is Sampler.GRID:
        points: list[tuple[dict[str, Any] | None, int | None]] = [
            (params, optuna_bridge.enqueue_point(db.url, optuna_name, params)[0])
            for params in spec.grid_points()
        ]
    else:
        points = [(None, None)] * spec.search.trials()
    with db.session() as session:
        study = StudyRow(
            name=name,
            optuna_study_name=optuna_name,
            spec=spec.model_dump(mode="json"),
            priority=spec.priority,
            max_parallel=spec.max_parallel,
            trial_count=len(points),
            cancel_requested=False,
            created_at=utcnow(),
        )
        session.add(study)
        session.flush()
        session.add_all(
            TrialRow(
                study_id=study.id,
                number=number,
                state=TrialState.WAITING,
                params=params,
                optuna_trial_id=optuna_trial_id,
                attempt=0,
                epochs_done=0,
            )
            for number, (params, optuna_trial_id) in enumerate(points)
        )
        study_id = study.id
    return get_study(db, study_id)


def count_unfinished_studies(db: Database) -> int:
    """Studies not cancelled with a trial still waiting or running (queued or running)."""
    with db.session() as session:
        count = session.scalar(
            select(func.count(func.distinct(TrialRow.study_id)))
            .join(StudyRow, StudyRow.id == TrialRow.study_id)
            .where(
                TrialRow.state.in_([TrialState.WAITING, TrialState.RUNNING]),
                StudyRow.cancel_requested.is_(False),
            )
        )
    return int(count or 0)


def _counts(db: Database, study_ids: list[int]) -> dict[int, dict[TrialState, int]]:
    counts: dict[int, dict[TrialState, int]] = {i: dict.fromkeys(TrialState, 0) for i in study_ids}
    if not study_ids:
        return counts
    with db.session() as session:
        rows = session.execute(
            select(TrialRow.study_id, TrialRow.state, func.count(TrialRow.id))
            .where(TrialRow.study_id.in_(study_ids))
            .group_by(TrialRow.study_id, TrialRow.state)
        ).all()
    for study_id, state, count in rows:
        counts[study_id][TrialState(state)] = count
    return counts


def _objective_value(summary: dict[str, Any] | None, objective: Objective) -> float | None:
    if not summary:
        return None
    key = "best_val_acc" if objective is Objective.VAL_ACC else "best_val_loss"
    return finite_or_none(summary.get(key))


def _best_trials(db: Database, studies: list[StudyRow]) -> dict[int, BestTrial]:
    ids = [s.id for s in studies]
    if not ids:
        return {}
    objectives = {s.id: Objective(s.spec.get("objective", "val_acc")) for s in studies}
    best: dict[int, BestTrial] = {}
    with db.session() as session:
        rows = session.execute(
            select(
                TrialRow.id, TrialRow.study_id, TrialRow.number, TrialRow.params, TrialRow.summary
            ).where(TrialRow.study_id.in_(ids), TrialRow.state == TrialState.COMPLETE)
        ).all()
    for trial_id, study_id, number, params, summary in rows:
        objective = objectives[study_id]
        value = _objective_value(summary, objective)
        if value is None or params is None:
            continue
        current = best.get(study_id)
        better = current is None or (
            value > current.value if objective is Objective.VAL_ACC else value < current.value
        )
        if better:
            best[study_id] = BestTrial(
                trial_id=trial_id, number=number, lr=float(params["lr"]), value=value
            )
    return best


def _study_public(
    row: StudyRow, counts: dict[TrialState, int], best: BestTrial | None
) -> StudyPublic:
    total = sum(counts.values())
    finished = sum(n for state, n in counts.items() if state.finished)
    return StudyPublic(
        id=row.id,
        name=row.name,
        status=queue.study_status(counts, cancel_requested=row.cancel_requested),
        spec=row.spec,
        counts=counts,
        best_trial=best,
        progress=finished / total if total else 0.0,
        created_at=row.created_at,
        cancelled_at=row.cancelled_at,
        url=f"/v1/studies/{row.id}",
        optuna_study_name=row.optuna_study_name,
        objective=str(row.spec.get("objective", "val_acc")),
        priority=row.priority,
        max_parallel=row.max_parallel,
        trial_count=row.trial_count,
    )


def _publics(db: Database, rows: list[StudyRow]) -> list[StudyPublic]:
    counts = _counts(db, [r.id for r in rows])
    best = _best_trials(db, rows)
    return [_study_public(r, counts[r.id], best.get(r.id)) for r in rows]


def _study_row(db: Database, study_id: int) -> StudyRow:
    with db.session() as session:
        row = session.get(StudyRow, study_id)
    if row is None:
        raise NotFoundError(f"study {study_id} does not exist")
    return row


def get_study(db: Database, study_id: int) -> StudyPublic:
    """One study with its status, counts, best trial and progress."""
    return _publics(db, [_study_row(db, study_id)])[0]


def list_studies(
    db: Database, *, status: StudyStatus | None = None, offset: int = 0, limit: int = 50
) -> Page[StudyPublic]:
    """Studies, newest first; ``count`` is the number of matches before paging."""
    if offset < 0 or not 1 <= limit <= 1000:
        raise ValueError(f"need offset >= 0 and 1 <= limit <= 1000, got {offset=} {limit=}")
    with db.session() as session:
        if status is None:
            count = session.scalar(select(func.count(StudyRow.id))) or 0
            rows = list(
                session.scalars(
                    select(StudyRow).order_by(StudyRow.id.desc()).offset(offset).limit(limit)
                )
            )
            return Page[StudyPublic](data=_publics(db, rows), count=count)
        rows = list(session.scalars(select(StudyRow).order_by(StudyRow.id.desc())))
    # Status is derived from the trials, so it is filtered here rather than in SQL.
    matching = [s for s in _publics(db, rows) if s.status == status]
    return Page[StudyPublic](data=matching[offset : offset + limit], count=len(matching))


def cancel_study(db: Database, study_id: int) -> StudyPublic:
    """Cancel a study: running trials stop at their next epoch, finished results stay."""
    current = get_study(db, study_id)
    if current.status in (StudyStatus.COMPLETED, StudyStatus.FAILED):
        raise ConflictError(
            f"study {study_id} already finished ({current.status}); nothing to cancel"
        )
    for optuna_trial_id in queue.cancel(db, study_id):
        optuna_bridge.end_waiting_trial(db.url, optuna_trial_id)
    return get_study(db, study_id)


def _trial_public(row: TrialRow) -> dict[str, Any]:
    summary = row.summary or {}
    return {
        "id": row.id,
        "study_id": row.study_id,
        "number": row.number,
        "state": TrialState(row.state),
        "params": row.params or {},
        "label": row.label,
        "confidence": row.confidence,
        "final_val_acc": finite_or_none(summary.get("final_val_acc")),
        "best_val_acc": finite_or_none(summary.get("best_val_acc")),
        "final_val_loss": finite_or_none(summary.get("final_val_loss")),
        "epochs_done": row.epochs_done,
        "attempt": row.attempt,
        "optuna_trial_number": row.optuna_trial_number,
        "url": f"/v1/trials/{row.id}",
    }


def list_trials(db: Database, study_id: int) -> Page[TrialPublic]:
    """Every trial slot of a study, in slot order."""
    _study_row(db, study_id)
    with db.session() as session:
        rows = list(
            session.scalars(
                select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number)
            )
        )
    return Page[TrialPublic](data=[TrialPublic(**_trial_public(r)) for r in rows], count=len(rows))


def _trial_row(db: Database, trial_id: int) -> TrialRow:
    with db.session() as session:
        row = session.get(TrialRow, trial_id)
    if row is None:
        raise NotFoundError(f"trial {trial_id} does not exist")
    return row


def _epoch_records(db: Database, row: TrialRow) -> list[dict[str, Any]]:
    with db.session() as session:
        return list(
            session.scalars(
                select(EpochRow.record)
                .where(EpochRow.trial_id == row.id, EpochRow.attempt == row.attempt)
                .order_by(EpochRow.epoch)
            )
        )


def _json_safe(record: dict[str, Any]) -> dict[str, Any]:
    return {k: finite_or_none(v) if isinstance(v, float) else v for k, v in record.items()}


def get_trial(db: Database, trial_id: int) -> TrialDetail:
    """A trial with its timings, error, full curves (nulls for non-finite) and diagnosis."""
    row = _trial_row(db, trial_id)
    records = _epoch_records(db, row)
    with db.session() as session:
        attempts = list(
            session.scalars(
                select(AttemptRow)
                .where(AttemptRow.trial_id == trial_id)
                .order_by(AttemptRow.attempt)
            )
        )
    summary = row.summary or {}
    end = row.finished_at or (utcnow() if row.state == TrialState.RUNNING else None)
    duration = (end - row.claimed_at).total_seconds() if end and row.claimed_at else None
    return TrialDetail(
        **_trial_public(row),
        worker=row.worker,
        device=row.device,
        claimed_at=row.claimed_at,
        heartbeat_at=row.heartbeat_at,
        finished_at=row.finished_at,
        duration_s=duration,
        error=row.error,
        stop_reason=row.stop_reason,
        best_epoch=summary.get("best_epoch"),
        curves=curves_json(records, summary.get("num_classes")),
        epochs=[_json_safe(r) for r in records],
        diagnosis=_json_safe_tree(row.diagnosis),
        attempts=[
            AttemptPublic(
                attempt=a.attempt,
                state=TrialState(a.state),
                worker=a.worker,
                optuna_trial_number=a.optuna_trial_number,
                claimed_at=a.claimed_at,
                finished_at=a.finished_at,
                error=a.error,
            )
            for a in attempts
        ],
    )


def _json_safe_tree(value: Any) -> Any:
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: _json_safe_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe_tree(v) for v in value]
    return value


def trial_diagnosis(db: Database, trial_id: int) -> Diagnosis:
    """The stored diagnosis, or for a running trial a provisional one from its epochs so far."""
    from studies.diagnosis import Curves, Diagnosis, diagnose_run

    row = _trial_row(db, trial_id)
    if row.diagnosis is not None:
        return Diagnosis.model_validate(row.diagnosis)
    records = _epoch_records(db, row)
    if not records:
        raise ConflictError(f"trial {trial_id} has no recorded epochs yet ({row.state})")
    summary = row.summary or {}
    return diagnose_run(Curves.model_validate(curves_json(records, summary.get("num_classes"))))


def study_diagnosis(db: Database, study_id: int) -> StudySummary:
    """The study summary: labels by learning rate, best trial, lr window, next step."""
    from studies.diagnosis import Diagnosis, TrialOutcome, diagnose_study

    study = _study_row(db, study_id)
    with db.session() as session:
        rows = list(
            session.scalars(
                select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number)
            )
        )
    outcomes = []
    for row in rows:
        if row.params is None:
            continue  # a random/tpe slot that has not started has no learning rate yet
        public = _trial_public(row)
        outcomes.append(
            TrialOutcome(
                number=row.number,
                params=row.params,
                state=row.state,
                diagnosis=Diagnosis.model_validate(row.diagnosis) if row.diagnosis else None,
                final_val_acc=public["final_val_acc"],
                best_val_acc=public["best_val_acc"],
                final_val_loss=public["final_val_loss"],
            )
        )
    return diagnose_study(outcomes, spec=study.spec)


def trial_curves_png(db: Database, trial_id: int) -> bytes:
    """Train/val loss and accuracy of a trial, best epoch marked, label in the title."""
    row = _trial_row(db, trial_id)
    study = _study_row(db, row.study_id)
    summary = row.summary or {}
    lr = (row.params or {}).get("lr")
    title = f"{study.name} #{row.number}" + (f" lr={lr:g}" if lr is not None else "")
    return plots.trial_curves_png(
        curves_json(_epoch_records(db, row), None),
        title=title,
        label=row.label,
        best_epoch=summary.get("best_epoch"),
    )


def study_lr_png(db: Database, study_id: int) -> bytes:
    """Best validation accuracy against learning rate, points colored by label."""
    study = _study_row(db, study_id)
    points = [
        plots.LrPoint(
            lr=float(t.params["lr"]), val_acc=t.best_val_acc, label=t.label, number=t.number
        )
        for t in list_trials(db, study_id).data
        if "lr" in t.params and t.state != TrialState.WAITING
    ]
    return plots.study_lr_png(points, title=f"{study.name}: accuracy vs learning rate")


def reap_stale_trials(
    db: Database, *, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> list[queue.Reaped]:
    """Fail and re-queue the trials of dead workers (the API runs this periodically)."""
    return queue.reap_stale(db, stale_after_s=stale_after_s)


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


def readiness(db: Database, *, worker_window_s: float = 60.0) -> Readiness:
    """Ready when the database answers and a worker was seen within *worker_window_s*."""
    if not db.ping():
        return database_unreachable(worker_window_s=worker_window_s)
    since = utcnow() - timedelta(seconds=worker_window_s)
    with db.session() as session:
        rows = list(
            session.scalars(
                select(WorkerRow).where(WorkerRow.last_seen_at >= since).order_by(WorkerRow.name)
            )
        )
    workers = [
        WorkerPublic(
            name=w.name,
            host=w.host,
            pid=w.pid,
            device=w.device,
            started_at=w.started_at,
            last_seen_at=w.last_seen_at,
            current_trial_id=w.current_trial_id,
            trials_done=w.trials_done,
        )
        for w in rows
    ]
    return Readiness(
        ready=bool(workers),
        database=True,
        workers_seen=len(workers),
        worker_window_s=worker_window_s,
        workers=workers,
        reason=None if workers else f"no worker seen in the last {worker_window_s:g} s",
    )
