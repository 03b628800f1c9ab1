"""Settings read once from ``SWEEPDOC_*`` environment variables, typed and validated.

Nothing below the service layer reads the environment: values are passed down.
Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url


class Settings(BaseSettings):
    """Every knob of a sweepdoc deployment; see README for what each one costs."""

    model_config = SettingsConfigDict(env_prefix="SWEEPDOC_", extra="ignore")

    home: Path = Field(
        default=Path.home() / ".sweepdoc",
        description="State folder: SQLite database, checkpoints, artifacts.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default: a SQLite file under `home`.",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Dataset root for mnist/cifar/imagefolder; default: `home`/data.",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, /v1 writes and the dashboard need `Authorization: Bearer ...`.",
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body the API accepts (bytes); larger ones get HTTP 413.",
    )
    url: str = Field(
        default="http://127.0.0.1:8000",
        description="Base URL of the sweepdoc server the CLI (`submit`, `status`) talks to.",
    )
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds the CLI waits for one HTTP response before giving up.",
    )
    worker_poll_interval_s: float = Field(
        default=1.0,
        gt=0,
        description="Seconds an idle worker waits before looking at the queue again.",
    )
    worker_heartbeat_interval_s: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between two heartbeats of a busy worker.",
    )
    worker_stale_after_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "Seconds without a heartbeat after which a worker counts as dead: its trial is "
            "marked failed and its grid point queued again. Must exceed the heartbeat interval."
        ),
    )
    ready_worker_window_s: float = Field(
        default=60.0,
        gt=0,
        description="/readyz reports ready only if some worker beat within this many seconds.",
    )
    shutdown_grace_s: float = Field(
        default=60.0,
        ge=0,
        description=(
            "Seconds `serve` gives its local workers to stop cleanly (they stop the running "
            "trial at its next epoch) before killing them."
        ),
    )

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

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

    @property
    def resolved_data_dir(self) -> Path:
        """The dataset root in use."""
        return self.data_dir if self.data_dir is not None else self.home / "data"

    @property
    def artifacts_dir(self) -> Path:
        """Where checkpoints and plots live (file names are never taken from user input)."""
        return self.home / "artifacts"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
