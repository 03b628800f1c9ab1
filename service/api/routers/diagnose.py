"""`POST /v1/diagnose`: label a run from its curves, or from a CSV or TensorBoard log of it,
without storing anything.

The body is JSON, as every `/v1` write: either a curves object (as before; its optional
`plan` says what the run planned: total epochs and LR schedule), or a log upload
(`{"format": "csv", "content": "<csv text>", "map": {"val_loss": "loss/val"}}`,
`{"format": "tensorboard", "content_base64": "<one event file>"}`, optional `plan`), told
apart by its `format` key. The answer is the diagnosis, with `mapping` (which column or tag
became which curve, and why every other one did not) for an upload and null for a curves
object.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    RootModel,
    Tag,
    ValidationError,
    model_validator,
)

from service.api.errors import error_responses
from service.api.json_body import JsonBody, parse_json_body
from studies.diagnosis import Curves, Diagnosis, Plan, diagnose_run
from studies.runlogs import CurveMapping, RunLog, RunLogError, read_csv
from studies.runlogs import read_tensorboard_bytes as read_event_file

router = APIRouter(prefix="/v1", tags=["diagnose"])


class LogUpload(BaseModel):
    """A run's log in another tool's format, to be read into curves."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["csv", "tensorboard"] = Field(
        description="`csv` (Keras' or Lightning's CSVLogger) or `tensorboard` (one event file)."
    )
    content: str | None = Field(default=None, description="The CSV text (csv only).")
    content_base64: str | None = Field(
        default=None,
        description="The file's bytes in base64: the event file (tensorboard), or the CSV.",
    )
    map: dict[str, str] = Field(
        default_factory=dict,
        description='Curve → column or tag, beating the names (`{"val_loss": "loss/val"}`).',
    )
    num_classes: Annotated[int, Field(strict=True, ge=2, le=1_000_000)] | None = None
    plan: Plan | None = Field(
        default=None,
        description="What the run planned (total epochs, LR schedule), as in a curves object.",
    )

    @model_validator(mode="after")
    def _one_content(self) -> LogUpload:
        if (self.content is None) == (self.content_base64 is None):
            raise ValueError("content: give exactly one of content and content_base64")
        if self.format == "tensorboard" and self.content is not None:
            raise ValueError(
                "content: an event file is binary; send it base64-encoded as content_base64"
            )
        return self

    def read(self) -> RunLog:
        """The curves this log holds (RunLogError when it holds none)."""
        data = b""
        if self.content_base64 is not None:
            try:
                data = base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as exc:
                raise RunLogError("content_base64", f"not base64 ({exc})") from None
        if self.format == "tensorboard":
            return read_event_file(data, overrides=self.map, num_classes=self.num_classes)
        if self.content is not None:
            text = self.content
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RunLogError("content_base64", f"the CSV is not UTF-8 ({exc})") from None
        return read_csv(text, overrides=self.map, num_classes=self.num_classes)


def _kind(body: Any) -> str:
    return "log" if isinstance(body, dict) and "format" in body else "curves"


class DiagnoseBody(RootModel[Any]):
    """A curves object, or a log upload (it has a `format` key)."""

    root: Annotated[
        Annotated[Curves, Tag("curves")] | Annotated[LogUpload, Tag("log")],
        Discriminator(_kind),
    ]


class DiagnosisWithMapping(Diagnosis):
    """The diagnosis, and how a log upload became its curves."""

    mapping: CurveMapping | None = Field(
        default=None,
        description="For a log upload: which column or tag became which curve, which were "
        "ignored and why (null for a curves object).",
    )


_BODY = JsonBody(DiagnoseBody)


def _parse(body: bytes) -> Curves | LogUpload:
    try:
        return parse_json_body(DiagnoseBody, body).root
    except RequestValidationError as exc:
        # The union's tag ('curves' or 'log') is not a field of the body: drop it from each
        # error's location, so a bad curve is still named `val_acc`, as before uploads.
        errors = [
            {**e, "loc": (e["loc"][0], *e["loc"][2:])} if len(e["loc"]) > 1 else e
            for e in exc.errors()
        ]
        raise RequestValidationError(errors) from None


async def diagnose_body(request: Request) -> Curves | LogUpload:
    """The body, parsed and validated in a worker thread (see json_body.py)."""
    return await anyio.to_thread.run_sync(_parse, await request.body())


def _refused(upload: LogUpload, error: RunLogError) -> RequestValidationError:
    # The field is the column, tag or `map` entry at fault; the whole log when none is.
    whole = "content" if upload.content is not None else "content_base64"
    field = whole if error.field.startswith("(") else error.field
    return RequestValidationError(
        [{"type": "invalid_log", "loc": ("body", field), "msg": error.reason}]
    )


@router.post(
    "/diagnose",
    response_model=DiagnosisWithMapping,
    responses=error_responses(415, 422),
    openapi_extra=_BODY.openapi,
)
def diagnose(
    body: Annotated[Curves | LogUpload, Depends(diagnose_body)],
) -> DiagnosisWithMapping:
    """Diagnose one run: its curves JSON (`null` stands for a non-finite value), or a CSV or
    TensorBoard log of it, answered with the mapping used."""
    mapping = None
    if isinstance(body, LogUpload):
        try:
            log = body.read()
        except RunLogError as exc:
            raise _refused(body, exc) from None
        try:
            curves = log.curves.with_plan(body.plan)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", "plan"), "msg": reason}]
            ) from None
        body, mapping = curves, log.mapping
    diagnosis = diagnose_run(body)
    return DiagnosisWithMapping.model_validate({**dict(diagnosis), "mapping": mapping})
