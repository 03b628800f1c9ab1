"""What the client raises: one exception per kind of answer a caller acts on differently,
each carrying the server's error body (code, message, the rejected fields).

``ApiError`` (any error answer) → ``InvalidRequest`` (422: ``errors`` names each field),
``NotFound`` (404), ``Conflict`` (409), ``Unauthorized`` (401), ``RateLimited`` (429: retry
after ``retry_after_s``), ``ServerBusy`` (503: the database is away, retry); ``ServerUnreachable``
when nothing answers at all. ``str(error)`` is the server's message, one line per rejected
field, as the CLI prints it.
"""

from __future__ import annotations

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ErrorItem(BaseModel):
    """One rejected field of an error answer: the client's reading of the API's ``ErrorItem``
    (service/api/errors.py; not imported here, since the server's modules take seconds to
    import; tests/service/test_client.py checks both have the same fields)."""

    model_config = ConfigDict(frozen=True)

    field: str = Field(description="Dotted path of the field, e.g. `train.epochs`.")
    location: str = Field(description="`body`, `query` or `path`.")
    reason: str
    type: str


class _ErrorBody(BaseModel):
    code: str = "error"
    message: str | None = None
    detail: str | None = None  # what a non-sweepdoc answer (a proxy, FastAPI itself) says
    errors: list[ErrorItem] = Field(default_factory=list)


class ApiError(Exception):
    """The server answered with an error (its own message is kept), or could not be reached.

    ``status_code`` (None when nothing answered), ``code`` (the API's machine-readable kind,
    e.g. ``not_found``, ``invalid_request``), ``errors`` (the rejected fields),
    ``retry_after_s`` (the answer's ``Retry-After``: the server sends one with a 429).
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        code: str | None = None,
        errors: list[ErrorItem] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.errors = list(errors or [])
        self.retry_after_s = retry_after_s

    @property
    def transient(self) -> bool:
        """The server is away or failing, not refusing this request: nothing answered, a
        5xx, or a 429. The same request may succeed later; a 4xx refusal never will."""
        return self.status_code is None or self.status_code >= 500 or self.status_code == 429


class ServerUnreachable(ApiError):
    """No sweepdoc server answers at the URL."""


class InvalidRequest(ApiError):
    """422: the request was refused; ``errors`` names each field and the reason."""


class NotFound(ApiError):
    """404: no such study, trial or run."""


class Conflict(ApiError):
    """409: the request contradicts the current state (e.g. a changed epoch resent)."""


class Unauthorized(ApiError):
    """401: a token is needed (SWEEPDOC_API_TOKEN), or the one sent is wrong."""


class RateLimited(ApiError):
    """429: this client's write rate, or the queue, is at its limit; retry after
    ``retry_after_s``."""


class ServerBusy(ApiError):
    """503: the server's database does not answer; the same request may be retried."""


_BY_STATUS: dict[int, type[ApiError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    429: RateLimited,
    503: ServerBusy,
}


def error_from_response(response: httpx.Response) -> ApiError:
    """The exception for an error answer, with the server's message and rejected fields."""
    status = response.status_code
    try:
        body = _ErrorBody.model_validate(response.json())
    except (ValueError, ValidationError):
        return ApiError(f"HTTP {status} from {response.request.url}", status_code=status)
    message = body.message or body.detail or f"HTTP {status}"
    if body.errors:
        # One line per rejected field reads better than the server's one-line summary.
        lines = [f"  {item.field}: {item.reason}" for item in body.errors]
        message = "\n".join([f"the server refused the request (HTTP {status}):", *lines])
    kind = _BY_STATUS.get(status, ApiError)
    return kind(
        message,
        status_code=status,
        code=body.code,
        errors=body.errors,
        retry_after_s=retry_after_s(response),
    )


def retry_after_s(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds (None when absent or not a number)."""
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None
