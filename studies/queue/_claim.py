"""Claiming: a waiting slot becomes one worker's, exactly once.

The claim is one conditional ``UPDATE … SET state='running' WHERE id=? AND state='waiting'
AND <running slots of the study> < max_parallel AND NOT cancelled`` whose row count says
whether this worker won; on PostgreSQL the study row is locked ``FOR UPDATE`` first, so the
running count is taken after the previous claim of the same study committed.

A worker that trains packs (``studies.pack_run``) claims its first slot so, then up to K-1
more waiting slots of the same study (``claim_more``), each by the same conditional
``UPDATE``: every slot is still won by one worker alone, and a pack of K counts K running
slots against ``max_parallel``. Each slot keeps its own attempt, heartbeat and reaping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import exists, func, select, update
from sqlalchemy.orm import aliased

from studies import optuna_bridge
from studies.db import (
    DEFAULT_STALE_AFTER_S,
    Database,
    StudyRow,
    TrialRow,
    TrialState,
    utcnow,
)
from studies.queue._sql import HeldAttempt, ended_attempt, rowcount
from studies.spec import StudySpec

# Waiting slots looked at per claim round; more than one so a lost race tries the next.
_CLAIM_CANDIDATES = 8


@dataclass(frozen=True)
class Claim:
    """A slot this worker won: everything needed to run it."""

    trial_id: int
    study_id: int
    number: int
    attempt: int  # the fence: every write of this attempt is conditional on it
    worker: str
    stale_after_s: float  # this worker's heartbeat grace, stored in the slot for reapers
    params: dict[str, Any] | None  # None: a fresh random/tpe slot, the sampler picks
    enqueued_optuna_trial_id: int | None  # a grid slot's WAITING Optuna trial, first attempt
    optuna_study_name: str
    spec: StudySpec


def _running_in_study(study_id: Any) -> Any:
    other = aliased(TrialRow)
    return (
        select(func.count(other.id))
        .where(other.study_id == study_id, other.state == TrialState.RUNNING)
        .scalar_subquery()
    )


def claim_next(
    db: Database, *, worker: str, device: str, stale_after_s: float = DEFAULT_STALE_AFTER_S
) -> Claim | None:
    """Claim the next waiting slot (priority, then submission order), or None.

    *stale_after_s* is this worker's heartbeat grace: the slot records it, and every reaper
    (other workers, the API) fails the attempt only once the heartbeat is older than it."""
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
        if try_claim(
            db, trial_id, study_id, worker=worker, device=device, stale_after_s=stale_after_s
        ):
            claim = _runnable_claim(db, trial_id, worker)
            if claim is not None:
                return claim
    return None


def try_claim(
    db: Database,
    trial_id: int,
    study_id: int,
    *,
    worker: str,
    device: str,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> bool:
    """Claim this one slot for *worker*; False when another worker won it first, the study
    was cancelled, or the study already runs ``max_parallel`` slots."""
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
                stale_after_s=stale_after_s,
                finished_at=None,
                error=None,
                stop_reason=None,
                epochs_done=0,
                packed_with=None,  # set again when this attempt trains in a pack
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1


def claim_more(
    db: Database, first: Claim, count: int, *, device: str, stale_after_s: float
) -> list[Claim]:
    """Claim up to *count* more waiting slots of *first*'s study for *first*'s worker (the
    rest of a pack), in slot order; fewer, or none, when others won them, the study was
    cancelled, or it reached ``max_parallel``."""
    if count < 1:
        return []
    with db.session() as session:
        candidates = session.scalars(
            select(TrialRow.id)
            .where(TrialRow.study_id == first.study_id, TrialRow.state == TrialState.WAITING)
            .order_by(TrialRow.number)
            .limit(count + _CLAIM_CANDIDATES)
        ).all()
    claims: list[Claim] = []
    for trial_id in candidates:
        if len(claims) == count:
            break
        if try_claim(
            db,
            trial_id,
            first.study_id,
            worker=first.worker,
            device=device,
            stale_after_s=stale_after_s,
        ):
            claim = _runnable_claim(db, trial_id, first.worker)
            if claim is not None:
                claims.append(claim)
    return claims


class UnrunnableSpecError(Exception):
    """The study's stored spec does not load on this worker (a plugin or torchvision the
    server has is missing here)."""


def _runnable_claim(db: Database, trial_id: int, worker: str) -> Claim | None:
    """The claim of a slot just won, or None when this worker cannot load its study's spec:
    the slot is then failed with the reason (never a worker that crashes on it, restarts
    and takes it again until its retries run out with no word of why)."""
    try:
        return load_claim(db, trial_id, worker)
    except UnrunnableSpecError as exc:
        _fail_unrunnable(db, trial_id, worker, str(exc))
        return None


def _fail_unrunnable(db: Database, trial_id: int, worker: str, reason: str) -> None:
    now = utcnow()
    error = (
        f"worker {worker} cannot run this study: {reason}. Install the same packages "
        "(model and dataset plugins, torchvision) on every worker as on the server."
    )
    with db.session() as session:
        row = session.get_one(TrialRow, trial_id)
        result = session.execute(
            update(TrialRow)
            .where(
                TrialRow.id == trial_id,
                TrialRow.worker == worker,
                TrialRow.attempt == row.attempt,
                TrialRow.state == TrialState.RUNNING,
            )
            .values(state=TrialState.FAILED, finished_at=now, heartbeat_at=None, error=error)
            .execution_options(synchronize_session=False)
        )
        failed = rowcount(result) == 1
        if failed:
            held = HeldAttempt.of(row)
            session.add(ended_attempt(held, finished_at=now, error=error, state=TrialState.FAILED))
    if failed:
        # As the reaper does: the slot's Optuna trial (a grid point's enqueued one) fails
        # now rather than waiting for the reconciler.
        optuna_bridge.fail_trial(db.url, row.optuna_trial_id)


def load_claim(db: Database, trial_id: int, worker: str) -> Claim:
    """The claim of a slot *worker* holds (after ``try_claim`` returned True)."""
    with db.session() as session:
        trial = session.get_one(TrialRow, trial_id)
        study = session.get_one(StudyRow, trial.study_id)
        try:
            spec = StudySpec.model_validate(study.spec)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(part) for part in first["loc"])
            message = str(first["msg"]).removeprefix("Value error, ")
            raise UnrunnableSpecError(f"{where}: {message}" if where else message) from None
        return Claim(
            trial_id=trial.id,
            study_id=study.id,
            number=trial.number,
            attempt=trial.attempt,
            worker=worker,
            stale_after_s=trial.stale_after_s,
            params=trial.params,
            enqueued_optuna_trial_id=trial.optuna_trial_id,
            optuna_study_name=study.optuna_study_name,
            spec=spec,
        )
