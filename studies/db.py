"""Database access: one SQLAlchemy engine per URL, sweepdoc's tables, and the state enums.

SQLite (the default, one machine) runs in WAL mode with a long busy timeout, so several
worker processes and the API can share one file: readers never block, writers queue up for
at most ``SQLITE_BUSY_TIMEOUT_S`` instead of failing with "database is locked". Every
transaction in sweepdoc is short (one claim, one epoch, one heartbeat). PostgreSQL is
reached through its URL (``postgresql+psycopg://…``) for many workers on many machines.

Optuna's RDB storage lives in the same database and owns ``studies``, ``trials``,
``alembic_version`` and friends; sweepdoc's tables are all prefixed ``sweepdoc_`` and their
schema is migrated by Alembic with its own version table (``studies.migrations``);
``studies.schema_setup.create_schema`` brings both up to date.

Connections (PostgreSQL): every process has two engines on the database, sweepdoc's and
Optuna's storage, and both are pooled as ``configure_pool`` says, with no overflow, so one
process never holds more than ``2 × PoolOptions.size`` connections (see docs/scaling.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import NullPool

from studies.columns import LosslessJSON, LosslessModel, StrEnumColumn, UTCDateTime
from studies.diagnosis import Label
from studies.results import TrialSummary
from studies.spec import Objective

# How long a SQLite writer waits for the lock before giving up. Long on purpose: a claim or
# an epoch write must never be lost to a momentary lock held by another process.
SQLITE_BUSY_TIMEOUT_S = 60.0

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

    __table_args__ = (
        Index("ix_sweepdoc_studies_order", "priority", "created_at"),
        Index("ix_sweepdoc_studies_parent", "parent_id"),
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


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL: readers do not block the writer and vice versa (the journal mode is persistent).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # NORMAL is durable against process crashes in WAL mode (only an OS crash may lose the
    # last transactions), and much faster than FULL for per-epoch writes.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


@dataclass(frozen=True)
class PoolOptions:
    """The connection pool of one engine on a PostgreSQL database (SQLite ignores it).

    There is no overflow: *size* is a hard cap, so a process (two engines) holds at most
    ``2 * size`` connections, and a thread that finds the pool busy waits up to *timeout_s*
    for a connection to come back (transactions are short, so the wait is milliseconds).
    """

    size: int = 2
    timeout_s: float = 30.0
    # Connections older than this are replaced at their next checkout (server-side idle
    # timeouts, load balancers that drop quiet connections).
    recycle_s: float = 1800.0
    # Shown in pg_stat_activity, so an operator sees which process holds which connection.
    application_name: str = "sweepdoc"

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"pool size must be at least 1, got size={self.size}")
        if self.timeout_s <= 0:
            raise ValueError(f"pool timeout must be positive, got timeout_s={self.timeout_s}")


# The pool each database URL gets in this process (``configure_pool``); else the default.
_POOLS: dict[str, PoolOptions] = {}


def configure_pool(url: str, pool: PoolOptions) -> None:
    """Pool every engine this process opens on *url* from now on as *pool*.

    Both sweepdoc's ``Database`` and Optuna's storage (``optuna_bridge.optuna_storage``) read
    it, so the service calls it once at start-up, before either exists, with values from its
    settings.
    """
    _POOLS[url] = pool


def pool_options(url: str) -> PoolOptions:
    """The pool engines on *url* get in this process."""
    return _POOLS.get(url, PoolOptions())


def engine_kwargs(url: str, *, role: str, pooled: bool = True) -> dict[str, Any]:
    """Engine options for *url*; *role* (``sweepdoc``, ``optuna``) names the engine's
    connections in pg_stat_activity. Optuna's storage gets the same options. *pooled* False:
    no pool at all (a connection per use, closed after it), for one-off start-up work."""
    if url.startswith("sqlite"):
        sqlite: dict[str, Any] = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
        if not pooled:
            return {**sqlite, "poolclass": NullPool}
        if make_url(url).database not in (None, "", ":memory:"):
            # A file's connections are a file handle each, so no cap: a thread never waits
            # for a pool slot (SQLAlchemy's default QueuePool gives up after 30 s with a
            # 503), only on SQLite's own busy timeout when a lock is really held. Seen under
            # 200 concurrent readers: a slow patch of I/O queued requests past the pool's
            # 30 s although no lock blocked them (WAL readers never wait for writers).
            sqlite["max_overflow"] = -1
        return sqlite
    pool = pool_options(url)
    # PostgreSQL limits application_name to 63 bytes.
    name = f"{pool.application_name} {role}".encode()[:63].decode(errors="ignore")
    if not pooled:
        return {"poolclass": NullPool, "connect_args": {"application_name": name}}
    return {
        "pool_size": pool.size,
        "max_overflow": 0,
        "pool_timeout": pool.timeout_s,
        "pool_recycle": pool.recycle_s,
        # A connection the server dropped (restart, idle timeout) is replaced, not handed out.
        "pool_pre_ping": True,
        "connect_args": {"application_name": name},
    }


def make_engine(url: str) -> Engine:
    engine = create_engine(url, **engine_kwargs(url, role="sweepdoc"))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


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
