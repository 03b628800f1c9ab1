"""Settings read once from ``SWEEPDOC_*`` environment variables, typed and validated.

Nothing below the service layer reads the environment: values are passed down.
Tests call ``get_settings.cache_clear()`` after changing the environment.
"""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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

    @field_validator("home", "data_dir", mode="after")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @property
    def resolved_database_url(self) -> str:
        """The database URL in use: the explicit one, else SQLite under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'sweepdoc.db'}"

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
