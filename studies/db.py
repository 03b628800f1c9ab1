"""Database access: sweepdoc's tables, the state enums, and a ``Database`` per URL.

SQLite (the default, one machine) is shared by several processes in WAL mode; PostgreSQL is
reached through its URL (``postgresql+psycopg://…``) for many workers on many machines.
Every transaction in sweepdoc is short (one claim, one epoch, one heartbeat). The engines,
their pragmas and pools are ``studies.engine``'s (re-exported here).

Optuna's RDB storage lives in the same database and owns ``studies``, ``trials``,
``alembic_version`` and friends; sweepdoc's tables are all prefixed ``sweepdoc_`` and their
schema is migrated by Alembic with its own version table (``studies.migrations``);
``studies.schema_setup.create_schema`` brings both up to date.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from studies.columns import LosslessJSON, LosslessModel, StrEnumColumn, UTCDateTime
from studies.diagnosis import Label
from studies.engine import PoolOptions as PoolOptions
from studies.engine import configure_pool as configure_pool
from studies.engine import engine_kwargs as engine_kwargs
from studies.engine import make_engine
from studies.results import TrialSummary
from studies.spec import Objective

# A worker's heartbeat grace unless it says otherwise (seconds): a running slot whose
# heartbeat is older than its worker's grace is reaped (``studies.queue.reap_stale``).
DEFAULT_STALE_AFTER_S = 30.0


class StudyStatus(StrEnum):
    """A study's status, derived from its trials (see ``queue.study_status``)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TrialState(StrEnum):
    """A trial slot's state. Diverged, pruned and cancelled runs are ``pruned``;
    ``failed`` means an error (or a worker that died more often than the retry limit)."""

    WAITING = "waiting"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED)


class ChainState(StrEnum):
    """Where a study stands in its follow-up chain (issue 13): whether the reconciler's
    sweep (``studies.chain.advance_all``) still has to decide its next round."""

    OFF = "off"  # follow-up off: no round ever follows it
    OPEN = "open"  # follow-up on and its next round not decided yet
    DECIDED = "decided"  # the next round taken or the loop stopped (``chain_reason``)

    @classmethod
    def at_submit(cls, follow_up_rounds: int) -> ChainState:
        """A new study's state: open when its spec asks for follow-up rounds."""
        return cls.OPEN if follow_up_rounds > 0 else cls.OFF


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "sweepdoc_studies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    optuna_study_name: Mapped[str] = mapped_column(String(160), unique=True)
    spec: Mapped[dict[str, Any]] = mapped_column(LosslessJSON)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_parallel: Mapped[int] = mapped_column(Integer)
    trial_count: Mapped[int] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The follow-up chain (issue 13): round 1 is what the user submitted; each later round
    # was submitted by the server from its parent's summary. Plain integers, not foreign
    # keys: a chain links both ways, and deleting one round must not need the other gone.
    parent_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    follow_up_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    # Why the next round was taken, or why the loop stopped here (None while undecided).
    chain_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Set at submit and at the decision (migration 0005); indexed, so the sweep reads only
    # the open rounds, never the studies without follow-up (no default: submit sets it).
    chain_state: Mapped[ChainState] = mapped_column(StrEnumColumn(ChainState, 16))

    __table_args__ = (
        Index("ix_sweepdoc_studies_order", "priority", "created_at"),
        Index("ix_sweepdoc_studies_parent", "parent_id"),
        Index("ix_sweepdoc_studies_chain", "chain_state"),
    )


class TrialRow(Base):
    """One trial slot: a grid point, or one sample of a random/tpe study.

    A slot is run by one worker at a time; ``attempt`` counts how often it was claimed.
    A dead worker's attempt is recorded in ``sweepdoc_attempts`` and the slot re-queued.
    """

    __tablename__ = "sweepdoc_trials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("sweepdoc_studies.id"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[TrialState] = mapped_column(
        StrEnumColumn(TrialState, 16), default=TrialState.WAITING
    )
    # None until a random/tpe slot is first claimed (the sampler picks them then).
    params: Mapped[dict[str, Any] | None] = mapped_column(LosslessJSON, nullable=True)
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    optuna_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    device: Mapped[str | None] = mapped_column(String(40), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    label: Mapped[Label | None] = mapped_column(StrEnumColumn(Label, 20), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(LosslessJSON, nullable=True)
    # The run's summary numbers; NaN survives (a diverged run's final loss).
    summary: Mapped[TrialSummary | None] = mapped_column(LosslessModel(TrialSummary), nullable=True)
    # The grace of the worker that claimed the slot (its SWEEPDOC_WORKER_STALE_AFTER_S):
    # every reaper judges the slot by its worker's deadline, never by its own. Last, as
    # migration 0002 added it.
    stale_after_s: Mapped[float] = mapped_column(Float, default=DEFAULT_STALE_AFTER_S)
    # Added by migration 0003 (issues 13 and 15).
    # The best epoch's checkpoint in the artifact store: its key (a path relative to the
    # artifacts folder), the epoch it holds and its size (the store's cap counts these).
    checkpoint_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer, nullable=True)
    checkpoint_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Things the user should know that did not fail the trial (e.g. "checkpoint skipped:
    # artifact store full"), a list of strings.
    warnings: Mapped[list[str] | None] = mapped_column(LosslessJSON, nullable=True)
    # The ids of the trials trained with this one as one packed model (itself excluded).
    packed_with: Mapped[list[int] | None] = mapped_column(LosslessJSON, nullable=True)
    # A range test's loss against learning rate and its suggestion (sampler range_test).
    lr_range: Mapped[dict[str, Any] | None] = mapped_column(LosslessJSON, nullable=True)

    __table_args__ = (
        UniqueConstraint("study_id", "number", name="uq_sweepdoc_trials_slot"),
        Index("ix_sweepdoc_trials_state", "state", "study_id"),
    )


class EpochRow(Base):
    """One epoch of one attempt: the trainer's EpochRecord, losslessly (NaN/±inf kept)."""

    __tablename__ = "sweepdoc_epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("sweepdoc_trials.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    epoch: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(LosslessJSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        UniqueConstraint("trial_id", "attempt", "epoch", name="uq_sweepdoc_epochs_epoch"),
    )


class AttemptRow(Base):
    """A finished attempt of a slot, kept as history (e.g. the attempt of a killed worker)."""

    __tablename__ = "sweepdoc_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[int] = mapped_column(ForeignKey("sweepdoc_trials.id"))
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[TrialState] = mapped_column(StrEnumColumn(TrialState, 16))
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    optuna_trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class WorkerRow(Base):
    """A worker process, as last seen (readiness, `sweepdoc status`)."""

    __tablename__ = "sweepdoc_workers"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    device: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    current_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    trials_done: Mapped[int] = mapped_column(Integer, default=0)


class RunState(StrEnum):
    """An external run's state; ``stopped``: told to stop by the live check (Optuna PRUNED)."""

    RUNNING = "running"
    COMPLETE = "complete"
    STOPPED = "stopped"


class RunRow(Base):
    """A user's own loop's run (``POST /v1/runs``): an Optuna trial of ``runs:<project>``."""

    __tablename__ = "sweepdoc_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(120))
    optuna_study_name: Mapped[str] = mapped_column(String(160))
    optuna_trial_id: Mapped[int] = mapped_column(Integer)
    optuna_trial_number: Mapped[int] = mapped_column(Integer)
    objective: Mapped[Objective] = mapped_column(StrEnumColumn(Objective, 16))
    params: Mapped[dict[str, Any]] = mapped_column(LosslessJSON)
    # The first epoch's metric names: every later epoch must carry the same (aligned curves).
    metrics: Mapped[list[str] | None] = mapped_column(LosslessJSON, nullable=True)
    num_classes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    state: Mapped[RunState] = mapped_column(StrEnumColumn(RunState, 16), default=RunState.RUNNING)
    epochs_done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    label: Mapped[Label | None] = mapped_column(StrEnumColumn(Label, 20), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    diagnosis: Mapped[dict[str, Any] | None] = mapped_column(LosslessJSON, nullable=True)
    summary: Mapped[TrialSummary | None] = mapped_column(LosslessModel(TrialSummary), nullable=True)

    __table_args__ = (Index("ix_sweepdoc_runs_project", "project", "created_at"),)


class RunEpochRow(Base):
    """A run's epoch (NaN kept) and the stop reason it was answered with (None: continue)."""

    __tablename__ = "sweepdoc_run_epochs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sweepdoc_runs.id"))
    epoch: Mapped[int] = mapped_column(Integer)
    values: Mapped[dict[str, Any]] = mapped_column(LosslessJSON)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_sweepdoc_run_epochs_epoch"),)


class Database:
    """The engine and session factory of one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A short transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def ping(self) -> bool:
        """Whether the database answers a trivial query."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()
