"""Submitting a study: one unit of work over sweepdoc's rows and its Optuna study.

Optuna writes through its own connections, so its study cannot join sweepdoc's
transaction (on SQLite it would even wait for the write lock that transaction holds). The
Optuna study is therefore created first, and every failure after that point removes it
again (compensation): a refused, invalid or failed submission leaves no Optuna study behind.
The queue limit is checked in the same transaction that inserts the rows, under a lock all
submissions take (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: a transaction advisory lock), so
concurrent submissions cannot all pass a count taken before any of them committed.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from studies import checkpoints, optuna_bridge
from studies.db import ChainState, Database, StudyRow, TrialRow, TrialState, utcnow
from studies.errors import QueueFullError
from studies.schemas import StudyPublic
from studies.spec import Sampler, StudySpec
from studies.store._cleanup import drop_optuna_study
from studies.store._studies import count_unfinished_studies, get_study

__all__ = ["submit_study"]

logger = logging.getLogger(__name__)

# Arbitrary constant key of the PostgreSQL advisory lock that serializes submissions' limit
# checks (held until the transaction ends; distinct from the schema lock's key).
_SUBMIT_LOCK_KEY = 0x5D0C_5B17


def _lock_submissions(session: Session, db: Database) -> None:
    """Make this transaction the only submission between its count and its commit."""
    if db.is_postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SUBMIT_LOCK_KEY})
    else:
        # The write lock now, before the count, instead of at the first INSERT: a second
        # submission waits here (busy timeout) and counts after this one committed.
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def _check_limit(db: Database, max_unfinished: int | None, session: Session | None = None) -> None:
    if max_unfinished is None:
        return
    unfinished = count_unfinished_studies(db, session=session)
    if unfinished >= max_unfinished:
        raise QueueFullError(unfinished, max_unfinished)


def _optuna_side(db: Database, name: str, spec: StudySpec) -> list[tuple[Any, int | None]]:
    """Create the Optuna study *name* and enqueue the grid points; the slots' (params, id)."""
    optuna_bridge.create_study(db.url, name, spec)
    if spec.search.sampler is Sampler.RANGE_TEST:
        # One point, where the ramp starts; the suggestion is stored when the test ends.
        points = [{"lr": spec.search.lr_low}]
    elif spec.search.sampler is Sampler.GRID:
        points = spec.grid_points()
    else:
        return [(None, None)] * spec.search.trials()
    return [(params, optuna_bridge.enqueue_point(db.url, name, params)[0]) for params in points]


def submit_study(
    db: Database,
    spec: StudySpec,
    *,
    artifacts_dir: Path,
    max_unfinished: int | None = None,
    within: Callable[[Session, StudyRow], None] | None = None,
) -> StudyPublic:
    """Queue a study: its Optuna study (grid points enqueued) and one slot per trial.

    *max_unfinished*: refuse with QueueFullError when that many studies are already queued
    or running (exact under concurrent submissions); None: no limit. On any failure nothing
    is left behind, neither rows nor the Optuna study. *within* runs in the inserting
    transaction once the study row has its id (studies.chain links a follow-up round to its
    parent there, so both commit or neither); whatever it raises undoes the submission.
    """
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    _check_limit(db, max_unfinished)  # cheap early refusal, before touching Optuna
    checkpoints.check_init_from(db, spec)  # a trial:<id> to fine-tune from has a checkpoint
    optuna_name = f"{spec.display_name}-{secrets.token_hex(4)}"
    try:
        points = _optuna_side(db, optuna_name, spec)
        with db.session() as session:
            _lock_submissions(session, db)
            _check_limit(db, max_unfinished, session)
            study = StudyRow(
                name=spec.display_name,
                optuna_study_name=optuna_name,
                spec=spec.model_dump(mode="json"),
                priority=spec.priority,
                max_parallel=spec.max_parallel,
                trial_count=len(points),
                cancel_requested=False,
                created_at=utcnow(),
                chain_state=ChainState.at_submit(spec.follow_up.max_rounds),
            )
            session.add(study)
            session.flush()
            if within is not None:
                within(session, study)
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
    except BaseException:
        drop_optuna_study(db.url, optuna_name)
        raise
    return get_study(db, study_id)
