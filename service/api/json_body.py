"""JSON request bodies parsed and validated in a worker thread, never on the event loop.

FastAPI validates a declared body model on the event loop, and a 1 MB body of 200,000
invalid items takes it seconds to validate and to list every error: `/healthz` and every
other request wait meanwhile. A route that declares its body as ``JsonBody(Model)`` instead
gets the same validation (pydantic's python mode, as FastAPI's) and the same 422 errors
(a ``RequestValidationError``, capped by the error handler), computed in a thread; the
OpenAPI description still shows the model as the request body.
"""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _json_invalid(position: int, reason: str) -> RequestValidationError:
    # The type FastAPI itself gives an unreadable body, so one handler formats both; the
    # body as a whole is at fault, so no field, and the reason says where it broke.
    return RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body",),
                "msg": f"{reason} (at byte {position})",
            }
        ]
    )


def parse_json_body(model: type[M], body: bytes) -> M:
    """*body* as an instance of *model*; RequestValidationError (→ 422) when it is not one.

    Every body the API cannot read is the same 422 ``json_invalid``: truncated, not JSON,
    empty, or not UTF-8 at all (Starlette would answer that last one with a bare 400).
    """
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise _json_invalid(exc.start, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _json_invalid(exc.pos, exc.msg) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # Inputs are left out: the handler never echoes them, and they can be megabytes.
        errors = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in errors]
        ) from None


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """*schema* with every ``#/$defs/…`` reference replaced by its definition."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {k: _inline_refs(v, defs) for k, v in schema.items() if k != "$defs"}
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


class JsonBody(Generic[M]):
    """A dependency reading the request body as *model* off the event loop.

    Use as ``Annotated[Model, Depends(JsonBody(Model))]`` with
    ``openapi_extra=JsonBody(Model).openapi`` on the route.
    """

    def __init__(self, model: type[M]) -> None:
        self.model = model

    async def __call__(self, request: Request) -> M:
        body = await request.body()
        return await anyio.to_thread.run_sync(parse_json_body, self.model, body)

    @property
    def openapi(self) -> dict[str, Any]:
        """The route's `requestBody` entry: the model's schema, self-contained."""
        schema = self.model.model_json_schema()
        inline = _inline_refs(schema, schema.get("$defs", {}))
        return {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": inline}},
            }
        }
