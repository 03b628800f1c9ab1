"""Property-based requests generated from the API's own OpenAPI schema (schemathesis): no
server errors, and every response matches the schema it is documented with."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.api import create_app
from service.settings import Settings
from tests.service.factory import tiny_spec

# Bounded: a few seconds in all, yet every operation sees dozens of generated inputs.
EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def app_schema(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[schemathesis.BaseSchema]:
    app = create_app(Settings(home=tmp_path_factory.mktemp("fuzz"), database_url=None))
    with TestClient(app) as client:
        # Something to find: ids 1 and 2 exist, so generated ids hit real rows too.
        for name in ("fuzz-a", "fuzz-b"):
            assert client.post("/v1/studies", json=tiny_spec(name)).status_code == 201
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(operation: schemathesis.APIOperation, checks: list[Any]) -> None:
    """Generate requests for *operation* and run *checks* on every response."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        case.validate_response(case.call(), checks=checks)

    check()


def test_every_operation_answers_within_its_schema_and_never_5xx(
    app_schema: schemathesis.BaseSchema,
) -> None:
    tested = []
    for operation in operations(app_schema):
        # /readyz answers 503 (documented) here: no worker runs in this test.
        checks: list[Any] = [response_schema_conformance]
        if operation.path != "/readyz":
            checks.append(not_a_server_error)
        fuzz(operation, checks)
        tested.append(f"{operation.method.upper()} {operation.path}")
    assert "POST /v1/studies" in tested and "POST /v1/diagnose" in tested
