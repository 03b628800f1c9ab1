"""Property-based requests generated from the API's own OpenAPI schema (schemathesis): no
server errors, and every response matches the schema it is documented with, on an open
server and on one with a token (with the token sent, and without it: then every /v1
operation must refuse, with its documented 401)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    response_schema_conformance,
    status_code_conformance,
)

from service.api import create_app
from service.settings import Settings
from tests.service.factory import tiny_spec

# Bounded: a few seconds in all, yet every operation sees dozens of generated inputs.
EXAMPLES_PER_OPERATION = 25


TOKEN = "fuzz-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module", params=["open", "token"])
def app_schema(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[schemathesis.BaseSchema]:
    token = TOKEN if request.param == "token" else None
    home = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    # Thousands of generated writes from one client: past the default write limit the
    # answers would be 429s, not the handlers' (the limits have their own tests).
    app = create_app(
        Settings(home=home, database_url=None, api_token=token, write_rate_limit="100000/minute")
    )
    with TestClient(app) as client:
        # Something to find: ids 1 and 2 exist, so generated ids hit real rows too.
        for name in ("fuzz-a", "fuzz-b"):
            response = client.post("/v1/studies", json=tiny_spec(name), headers=AUTH)
            assert response.status_code == 201, response.text
        yield schemathesis.openapi.from_asgi("/openapi.json", app)


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(
    operation: schemathesis.APIOperation,
    checks: list[Any],
    *,
    headers: dict[str, str] | None = None,
    examples: int = EXAMPLES_PER_OPERATION,
) -> None:
    """Generate requests for *operation* and run *checks* on every response."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: schemathesis.Case) -> None:
        case.validate_response(case.call(headers=headers), checks=checks)

    check()


def v1_operations(schema: schemathesis.BaseSchema) -> set[str]:
    return {
        f"{method.upper()} {path}"
        for path, item in schema.raw_schema["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }


def test_every_operation_answers_within_its_schema_and_never_5xx(
    app_schema: schemathesis.BaseSchema,
) -> None:
    secured = "token" in app_schema.raw_schema.get("components", {}).get("securitySchemes", {})
    tested = set()
    for operation in operations(app_schema):
        # /readyz answers 503 (documented) here: no worker runs in this test.
        checks: list[Any] = [response_schema_conformance, status_code_conformance]
        if operation.path != "/readyz":
            checks.append(not_a_server_error)
        fuzz(operation, checks, headers=AUTH if secured else None)
        tested.add(f"{operation.method.upper()} {operation.path}")
    assert v1_operations(app_schema) <= tested
    assert {"POST /v1/studies", "POST /v1/diagnose", "GET /v1/trials/{trial_id}"} <= tested


def test_without_the_token_every_v1_operation_refuses_with_its_documented_401(
    app_schema: schemathesis.BaseSchema,
) -> None:
    if "token" not in app_schema.raw_schema.get("components", {}).get("securitySchemes", {}):
        pytest.skip("the open server has no token to leave out")
    refused = set()
    for operation in operations(app_schema):
        if not operation.path.startswith("/v1/"):
            continue

        def refuses(ctx: Any, response: Any, case: schemathesis.Case) -> bool:
            assert response.status_code == 401, (case.path, response.status_code)
            return True

        fuzz(operation, [refuses, response_schema_conformance, ignored_auth], examples=5)
        refused.add(f"{operation.method.upper()} {operation.path}")
    assert refused == v1_operations(app_schema)
