"""Settings read once from ``SWEEPDOC_*`` environment variables, typed and validated.

Nothing below the service layer reads the environment: values are passed down.
Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import limits
from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from studies.db import DEFAULT_STALE_AFTER_S, PoolOptions
from studies.spec import MAX_EPOCHS, MAX_TRIALS, SpecLimits

# A shorter token can be guessed over the network; 32 url-safe bytes is the suggested one.
MIN_TOKEN_CHARS = 16


def _rate_limit_text(value: str) -> str:
    try:
        limits.parse(value)
    except ValueError:
        raise ValueError(
            "must be a rate such as `10/minute`, `5 per second` or `100/hour`"
        ) from None
    return value


# A duration in seconds that must be positive (a timeout, an interval, a window).
PositiveSeconds = Annotated[float, Field(gt=0)]
# A count of pooled database connections: at least one.
ConnectionCount = Annotated[int, Field(ge=1)]

# A rate in the `limits` notation (`10/minute`), checked at start-up (service/api/ratelimit.py).
RateLimitText = Annotated[str, AfterValidator(_rate_limit_text)]


def _comma_separated(value: object) -> object:
    # `SWEEPDOC_ALLOWED_HOSTS=a.example,b.example`: a list without JSON quoting.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _host_pattern(pattern: str) -> str:
    """A host name, an address, `*.domain` or `*`; what the `Host` check compares."""
    name = pattern.removeprefix("*.") if pattern != "*" else "x"
    if not name or any(c in name for c in "*/@?# \t"):
        raise ValueError(
            f"{pattern!r} is not a host name: give names such as `api.example` or "
            "`*.example.org`, without a scheme or path"
        )
    if (name.count(":") == 1 and not name.startswith("[")) or "]:" in name:
        raise ValueError(f"{pattern!r}: give the name without its port (ports are not compared)")
    return pattern


class Settings(BaseSettings):
    """Every knob of a sweepdoc deployment; see README for what each one costs."""

    # hide_input_in_errors: a refused value may be the token or a URL with its password.
    model_config = SettingsConfigDict(
        env_prefix="SWEEPDOC_",
        extra="ignore",
        hide_input_in_errors=True,
        use_attribute_docstrings=True,
    )

    home: Path = Path.home() / ".sweepdoc"
    """State folder: SQLite database, checkpoints, artifacts."""
    database_url: str | None = None
    """SQLAlchemy URL; default: a SQLite file under `home`."""
    data_dir: Path | None = None
    """Dataset root for mnist/cifar/imagefolder; default: `home`/data."""
    api_token: SecretStr | None = None
    """When set, /v1 writes and the whole dashboard need `Authorization: Bearer ...` (browsers
    log in at /login); at least 16 characters, no spaces."""
    public_reads: bool = False
    """With a token set, let /v1 reads (GET) through without it."""
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Extra names the server answers to (`Host` header), comma-separated, e.g. the "
            "public name of a reverse proxy; loopback names and the bound address always are."
        ),
    )
    session_ttl_s: PositiveSeconds = Field(
        default=12 * 3600,
        le=30 * 24 * 3600,
        description=(
            "Seconds a dashboard login lasts. 12 h: a working day, so a person logs in once "
            "a day, while a cookie copied off a machine stops working by the next."
        ),
    )
    login_rate_limit: RateLimitText = "10/minute"
    """POST /login attempts allowed per client address (`limits` notation); past it: 429 with
    Retry-After."""
    write_rate_limit: RateLimitText = "120/minute"
    """Writes (POST, PUT, PATCH, DELETE: submissions, cancels, deletions, dashboard edits)
    allowed per client address; past it: 429 with Retry-After. Two a second sustained: far
    above a person or a script's needs, far below a flood's."""
    run_epoch_rate_limit: RateLimitText = "1200/minute"
    """Epochs of external runs (POST /v1/runs/{id}/epochs) allowed per client address, counted
    apart from the writes: a training loop posts one an epoch, and a small network's epochs
    can take well under a second. Past it: 429 with Retry-After."""
    max_trials_per_study: int = Field(
        default=500,
        ge=1,
        le=MAX_TRIALS,
        description=f"Most trials per study (grid points or n_trials; at most {MAX_TRIALS}).",
    )
    max_epochs: int = Field(
        default=500,
        ge=1,
        le=MAX_EPOCHS,
        description=f"Most epochs one trial may train (at most {MAX_EPOCHS}).",
    )
    max_queued_studies: int = Field(
        default=100,
        ge=1,
        description="Most unfinished (queued or running) studies; a submission past it gets 429.",
    )
    max_artifact_bytes: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Most bytes the stored checkpoints may take in the artifact store (unset: no "
            "cap). A checkpoint that would pass it is skipped: the trial completes without "
            "one and says so in its warnings."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the API accepts (bytes); larger ones get HTTP 413.",
    )
    url: str = "http://127.0.0.1:8000"
    """Base URL of the sweepdoc server the CLI (`submit`, `status`) talks to."""
    request_timeout_s: PositiveSeconds = 30.0
    """Seconds the CLI waits for one HTTP response before giving up."""
    worker_poll_interval_s: PositiveSeconds = 1.0
    """Seconds between an idle worker's claim rounds while the queue does not change (it reads a
    one-row queue marker every 0.1 s and claims at once when work arrives)."""
    worker_heartbeat_interval_s: PositiveSeconds = 5.0
    """Seconds between two heartbeats of a busy worker."""
    worker_stale_after_s: PositiveSeconds = DEFAULT_STALE_AFTER_S
    """Seconds without a heartbeat after which this process's workers count as dead: each claimed
    trial stores its worker's value, and every reaper (other workers, the server) judges it by
    that one; the trial is then marked failed and its grid point queued again. Must exceed the
    heartbeat interval."""
    worker_max_pack: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Most trials of one study a worker trains as one packed model (issue 15); unset: "
            "as each study's max_pack says (auto: as many as fit on a GPU, on a CPU packs "
            "of up to 8 for networks at most 16 channels wide on images of at most 8x8 "
            "pixels); 1: never pack."
        ),
    )
    ready_worker_window_s: PositiveSeconds = 60.0
    """/readyz reports ready only if some worker beat within this many seconds."""
    ready_requires_worker: bool = True
    """Whether /readyz needs a worker seen within SWEEPDOC_READY_WORKER_WINDOW_S. True suits one
    host (serve with its own workers: no worker means nothing will run). Set false for an
    API-only server (serve --workers 0, Kubernetes): the queue is durable, so it can take
    studies while workers scale up or GPU nodes start."""
    shutdown_grace_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Seconds `serve` gives its local workers to stop cleanly (they stop the running "
            "trial at its next epoch) before killing them."
        ),
    )
    # PostgreSQL connections (SQLite ignores these): each process has two pooled engines,
    # sweepdoc's queue and Optuna's storage, each capped at its pool size (no overflow).
    worker_db_pool_size: ConnectionCount = 1
    """Connections each of a worker's two engines may hold: a worker opens at most twice this
    (its trainer thread and heartbeat thread share them)."""
    api_db_pool_size: ConnectionCount = 5
    """Connections each of the API process's two engines may hold (requests, the dashboard):
    `serve` opens at most twice this, its local workers not counted."""
    db_pool_timeout_s: PositiveSeconds = 30.0
    """Seconds a thread waits for a free pooled connection before failing."""

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        return _comma_separated(value)

    @field_validator("allowed_hosts", mode="after")
    @classmethod
    def _hosts_are_names(cls, value: list[str]) -> list[str]:
        return [_host_pattern(pattern) for pattern in value]

    @field_validator("api_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        # `SWEEPDOC_API_TOKEN=` (empty) means "no token", as an unset variable does.
        return None if value == "" else value

    @field_validator("api_token", mode="after")
    @classmethod
    def _token_strength(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value()
        # Never echo the token itself: only what is wrong with it.
        if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable():
            raise ValueError(
                f"must be at least {MIN_TOKEN_CHARS} printable ASCII characters; generate one "
                "with `python -c 'import secrets; print(secrets.token_urlsafe(32))'`"
            )
        if any(c.isspace() for c in token):
            raise ValueError("must not contain spaces (it travels in an HTTP header)")
        return value

    @field_validator("url", mode="after")
    @classmethod
    def _strip_trailing_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must start with http:// or https://, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _heartbeat_below_staleness(self) -> "Settings":
        if self.worker_stale_after_s <= self.worker_heartbeat_interval_s:
            raise ValueError(
                "worker_stale_after_s must exceed worker_heartbeat_interval_s, got "
                f"worker_stale_after_s={self.worker_stale_after_s} and "
                f"worker_heartbeat_interval_s={self.worker_heartbeat_interval_s}"
            )
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The database URL may carry a password: a printed or logged Settings must not show it.
        for name, value in super().__repr_args__():
            if name == "database_url" and value:
                value = redact_url(value)
            yield name, value

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the explicit one, else SQLite under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'sweepdoc.db'}"

    def make_dirs(self) -> None:
        """Create the state folder (and a SQLite database's folder) if missing."""
        self.home.mkdir(parents=True, exist_ok=True)
        url = make_url(self.resolved_database_url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)

    def db_pool(self, role: str, *, size: int) -> PoolOptions:
        """The pool options of a process; *role* names its connections in pg_stat_activity."""
        return PoolOptions(
            size=size, timeout_s=self.db_pool_timeout_s, application_name=f"sweepdoc-{role}"
        )

    @property
    def resolved_data_dir(self) -> Path:
        """The dataset root in use."""
        return self.data_dir if self.data_dir is not None else self.home / "data"

    @property
    def artifacts_dir(self) -> Path:
        """Where checkpoints and plots live (file names are never taken from user input)."""
        return self.home / "artifacts"

    @property
    def spec_limits(self) -> SpecLimits:
        """This server's limits on a study: submissions and follow-up rounds must fit them."""
        return SpecLimits(max_trials=self.max_trials_per_study, max_epochs=self.max_epochs)


def env_name(field: str) -> str:
    """The environment variable a Settings field is read from: the prefix, then the field's
    name (pydantic-settings matches names case-insensitively; the upper-case one is the
    documented spelling)."""
    if field not in Settings.model_fields:
        raise ValueError(f"{field!r} is not a setting")
    return f"{Settings.model_config['env_prefix']}{field}".upper()


def redact_url(url: str) -> str:
    """*url* with its password masked (for logs, messages and terminals)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<database URL>"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
