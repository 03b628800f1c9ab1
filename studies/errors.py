"""The studies layer's error hierarchy: the service turns each into one HTTP status."""

from __future__ import annotations

from dataclasses import dataclass


class StudiesError(Exception):
    """Base class of every error the studies layer raises on purpose."""


class NotFoundError(StudiesError):
    """A study or trial id that does not exist (HTTP 404)."""


class ConflictError(StudiesError):
    """A request that contradicts the current state, e.g. cancelling a finished study (409)."""


class QueueFullError(StudiesError):
    """A submission while the server already holds its limit of unfinished studies (429)."""

    def __init__(self, unfinished: int, limit: int) -> None:
        self.unfinished = unfinished
        self.limit = limit
        super().__init__(
            f"The queue is full: {unfinished} studies are queued or running, this server's "
            f"limit is {limit}. Retry when some have finished, or cancel one."
        )


@dataclass(frozen=True)
class FieldError:
    """One reason a spec was refused: the dotted field path and what was wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class SpecError(StudiesError):
    """An invalid study spec (HTTP 422); ``errors`` names every bad field and why."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("invalid study spec: " + "; ".join(str(e) for e in errors))
