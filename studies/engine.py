"""Engines on sweepdoc's database: SQLite's pragmas and busy timeout, PostgreSQL's pools.

SQLite (the default, one machine) runs in WAL mode with a long busy timeout, so several
worker processes and the API can share one file: readers never block, writers queue up for
at most ``SQLITE_BUSY_TIMEOUT_S`` instead of failing with "database is locked".

Connections (PostgreSQL): every process has two engines on the database, sweepdoc's and
Optuna's storage, and both are pooled as ``configure_pool`` says, with no overflow, so one
process never holds more than ``2 × PoolOptions.size`` connections (see docs/scaling.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import NullPool

# How long a SQLite writer waits for the lock before giving up. Long on purpose: a claim or
# an epoch write must never be lost to a momentary lock held by another process.
SQLITE_BUSY_TIMEOUT_S = 60.0

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
