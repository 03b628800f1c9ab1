"""What routes declare to OpenAPI beyond their models, written once for every router: the
operation ids, the PNG plot routes, and the links from a created resource's id to its pages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute

from service.api.errors import error_responses

_Handler = TypeVar("_Handler", bound=Callable[..., Any])

PNG_MEDIA_TYPE = "image/png"
_PNG: dict[int | str, dict[str, Any]] = {
    200: {"content": {PNG_MEDIA_TYPE: {}}, "description": "A PNG image"}
}


def handler_name(route: APIRoute) -> str:
    """A route's OpenAPI operation id: its handler's name (``get_study``), the name the
    links below and generated clients call it by. A router passes this as its
    ``generate_unique_id_function`` instead of spelling each id again."""
    return route.name


def png_route(router: APIRouter, path: str) -> Callable[[_Handler], _Handler]:
    """``@router.get`` of a plot: a PNG image, or the error body of a missing or malformed id
    (404, 422) or an unreachable database (503). The handler returns ``png(...)``."""
    return router.get(
        path, response_class=Response, responses={**_PNG, **error_responses(404, 422, 503)}
    )


def png(image: bytes) -> Response:
    """The answer of a ``png_route``: *image*, a PNG file's bytes."""
    return Response(image, media_type=PNG_MEDIA_TYPE)


def id_links(parameter: str, source: str, operations: dict[str, str]) -> dict[str, Any]:
    """OpenAPI links from one response to *operations* (link name -> operation id), each
    taking its *parameter* from *source*, a runtime expression such as
    ``$response.body#/id``. Clients, and schemathesis's stateful phase, follow them to a
    resource's real pages instead of guessing ids."""
    return {
        name: {"operationId": operation, "parameters": {parameter: source}}
        for name, operation in operations.items()
    }
