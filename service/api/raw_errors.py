"""The API's JSON error shape, sent straight from ASGI middleware (before any route runs)."""

from __future__ import annotations

from starlette.types import Send

from service.api.errors import ErrorBody


async def send_json_error(
    send: Send,
    *,
    status: int,
    code: str,
    message: str,
    headers: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    """Answer with an `ErrorBody` (no field errors), as the exception handlers do."""
    body = ErrorBody(code=code, message=message).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
