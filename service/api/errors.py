"""One JSON error shape for every failure, and the handlers that produce it.

A user of the API never sees a traceback: domain errors map to 4xx with the message the
studies layer wrote for a person; request validation errors name each field and the reason;
an unreachable database is a 503 to retry; anything else is a bug, logged with its traceback
on the server and answered with a plain 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from optuna.exceptions import StorageInternalError
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from studies.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    QueueFullError,
    SpecError,
    StudiesError,
)
from studies.spec import field_error_at

logger = logging.getLogger(__name__)

# An error response lists at most this many fields, and says how many more there were: a
# 1 MB body of invalid items would otherwise get a 422 of tens of megabytes.
MAX_LISTED_ERRORS = 20
# Reasons may quote the rejected value (``got '…'``); a megabyte-long value is cut to this.
MAX_REASON_CHARS = 300


class ErrorItem(BaseModel):
    """One entry of an error response's `errors`: a rejected field, where it lives and why.

    The wire form of the studies layer's `FieldError` (field + message), plus what only
    HTTP knows: the part of the request it came from and a machine-readable kind.
    """

    field: str = Field(description="Dotted path of the field, e.g. `train.epochs`.")
    location: str = Field(description="Where the field lives: `body`, `query` or `path`.")
    reason: str = Field(description="Why the value was rejected.")
    type: str = Field(description="Machine-readable error kind, e.g. `greater_than`.")

    @classmethod
    def of(cls, error: FieldError, *, location: str, kind: str) -> ErrorItem:
        """The entry for the studies layer's *error*, found in *location*, of *kind*."""
        return cls(field=error.field, location=location, reason=error.message, type=kind)


class ErrorBody(BaseModel):
    """The body of every error response."""

    code: str = Field(description="Machine-readable kind: `not_found`, `invalid_request`, …")
    message: str = Field(description="What went wrong and what to do about it, for a person.")
    errors: list[ErrorItem] = Field(
        default_factory=list,
        description=f"One entry per rejected field (validation errors), the first "
        f"{MAX_LISTED_ERRORS} at most.",
    )
    errors_omitted: int = Field(
        default=0, ge=0, description="Rejected fields left out of `errors` (past the first ones)."
    )


# What every write (POST, PUT, PATCH, DELETE under /v1) may also answer, before its
# handler runs: another site's page (403), not JSON (415), the client's rate limit (429).
WRITE_ERRORS = (403, 415, 429)


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries declaring that *codes* answer with an `ErrorBody`."""
    descriptions = {
        400: "Bad request",
        404: "Not found",
        409: "Conflict with the current state",
        401: "Missing or wrong token: send `Authorization: Bearer <SWEEPDOC_API_TOKEN>`",
        403: "A write sent by a page of another site (its `Origin` or `Sec-Fetch-Site`)",
        415: "A write without `Content-Type: application/json` (required even with no body)",
        422: "Invalid request: `errors` names each field and the reason",
        429: "Too many: the queue is full (SWEEPDOC_MAX_QUEUED_STUDIES) or this client's "
        "write rate limit (SWEEPDOC_WRITE_RATE_LIMIT); `Retry-After` says when to retry",
        503: "Database unreachable; retry later",
    }
    return {
        code: {"model": ErrorBody, "description": descriptions.get(code, "Error")} for code in codes
    }


def error_response(status_code: int, code: str, message: str, **extra: Any) -> JSONResponse:
    """A JSON response carrying an `ErrorBody`."""
    body = ErrorBody(code=code, message=message, **extra)
    return JSONResponse(status_code=status_code, content=body.model_dump(mode="json"))


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """*text*, cut to *limit* characters with the number of characters left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit} more characters)"


def _reason(err: Any) -> str:
    if err.get("type") == "extra_forbidden":
        # pydantic's "Extra inputs are not permitted" does not say which fields would be.
        return "unknown field (extra fields are not permitted); the accepted ones are at /docs"
    return shorten(str(err.get("msg", "invalid value")).removeprefix("Value error, "))


def _field_errors(errors: Sequence[Any]) -> list[ErrorItem]:
    """The first ``MAX_LISTED_ERRORS`` of *errors* as entries (the caller counts the rest)."""
    out: list[ErrorItem] = []
    for err in errors[:MAX_LISTED_ERRORS]:
        loc = [str(part) for part in err.get("loc", ())]
        location = loc[0] if loc and loc[0] in ("body", "query", "path", "header") else "body"
        path = loc[1:] if loc and loc[0] == location else loc
        # Model-level checks say which field they blame ("lr_low: must not exceed …").
        blamed = field_error_at(path, _reason(err))
        if blamed.field == "spec":  # the whole body, not a field of it
            blamed = FieldError("(body)", blamed.message)
        kind = str(err.get("type", "value_error"))
        out.append(ErrorItem.of(blamed, location=location, kind=kind))
    return out


def _validation_message(fields: list[ErrorItem], total: int) -> str:
    if any(f.type == "json_invalid" for f in fields):
        return "The request body is not valid JSON: " + "; ".join(
            f.reason for f in fields if f.type == "json_invalid"
        )
    parts = [f"{f.field}: {f.reason}" for f in fields[:5]]
    more = f" (and {total - 5} more)" if total > 5 else ""
    return "Invalid request. " + "; ".join(parts) + more


def _invalid(code: str, message: str, fields: list[ErrorItem], total: int) -> JSONResponse:
    """A 422 listing *fields*, the first of *total* rejected ones."""
    omitted = total - len(fields)
    if omitted:
        message += f" {omitted} more errors are not listed; fix these and send it again."
    return error_response(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        code,
        message,
        errors=fields,
        errors_omitted=omitted,
    )


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    fields = _field_errors(errors)
    total = len(errors)
    return _invalid("invalid_request", _validation_message(fields, total), fields, total)


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    return error_response(status.HTTP_404_NOT_FOUND, "not_found", str(exc))


async def _on_spec_error(request: Request, exc: Exception) -> JSONResponse:
    # Checks the spec schema alone cannot make (e.g. a dataset path outside the data root).
    assert isinstance(exc, SpecError)
    fields = [
        ErrorItem.of(FieldError(e.field, shorten(e.message)), location="body", kind="invalid_spec")
        for e in exc.errors[:MAX_LISTED_ERRORS]
    ]
    message = "Invalid study spec. " + "; ".join(f"{f.field}: {f.reason}" for f in fields)
    return _invalid("invalid_spec", message, fields, len(exc.errors))


async def _on_queue_full(request: Request, exc: Exception) -> JSONResponse:
    # The studies layer knows the limit, the service the setting that sets it.
    message = f"{exc} The limit is the setting SWEEPDOC_MAX_QUEUED_STUDIES."
    response = error_response(status.HTTP_429_TOO_MANY_REQUESTS, "queue_full", message)
    response.headers["Retry-After"] = "60"
    return response


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    return error_response(status.HTTP_409_CONFLICT, "conflict", str(exc))


async def _on_studies_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(status.HTTP_400_BAD_REQUEST, "bad_request", str(exc))


async def _on_database_error(request: Request, exc: Exception) -> JSONResponse:
    # The driver's message can carry host names or SQL: log it, do not send it.
    logger.warning("database error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "database_unavailable",
        "The database is unreachable or busy; nothing was changed. Retry in a few seconds.",
    )


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
    response = error_response(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        status.HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Internal error; the server log has the details. Please report it.",
    )


ErrorHandler = Callable[[Request, Exception], Awaitable[JSONResponse]]

# Which handler answers which exception. Starlette picks the entry of the exception's
# nearest class, so StudiesError catches the domain errors without an entry of their own
# and Exception only what nothing else claims.
_HANDLERS: tuple[tuple[type[Exception], ErrorHandler], ...] = (
    (RequestValidationError, _on_validation_error),
    (NotFoundError, _on_not_found),
    (SpecError, _on_spec_error),
    (ConflictError, _on_conflict),
    (QueueFullError, _on_queue_full),
    (StudiesError, _on_studies_error),
    (OperationalError, _on_database_error),
    (PoolTimeoutError, _on_database_error),
    (InterfaceError, _on_database_error),
    # Optuna wraps the driver's error of a failed write (submitting a study while the
    # database is down) in its own exception: the same 503, not a 500.
    (StorageInternalError, _on_database_error),
    (StarletteHTTPException, _on_http_error),
    (Exception, _on_unexpected),
)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on *app*."""
    for exception, handler in _HANDLERS:
        app.add_exception_handler(exception, handler)
