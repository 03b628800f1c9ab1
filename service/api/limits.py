"""Refuse oversized request bodies before they reach a handler (HTTP 413)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.raw_errors import send_json_error


class BodySizeLimit:
    """Pure ASGI middleware: at most *max_bytes* of request body, declared or streamed.

    A declared `Content-Length` over the limit is refused at once. A body of unknown length
    (chunked) is read up to the limit first, so memory stays bounded, then replayed to the
    app; past the limit it is refused without reading further.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)  # the server enforces the declared length
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send) -> None:
        await send_json_error(
            send,
            status=413,
            code="payload_too_large",
            message=f"The request body exceeds the limit of {self.max_bytes} bytes "
            "(setting SWEEPDOC_MAX_BODY_BYTES).",
        )
