"""A real `sweepdoc serve`, seen from outside: schemathesis (every check, every phase, the
stateful one following the OpenAPI links to real study and trial ids), a request that is
not UTF-8, methods the API lacks, and the CLI's `cancel` and `delete`.

Issue 14 found, with schemathesis 4.32 and all checks against a plain `serve`: a body that
is not UTF-8 answered 400, TRACE and PUT /v1/studies answered 404 without `Allow`, and
/readyz's 503 was undocumented. This runs the same tool the same way (settings in
tests/service/schemathesis.toml, each with its reason), so what it finds fails the suite.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.factory import METHODS_NOT_ALLOWED, tiny_spec
from tests.service.serve_process import ServeProcess, run_cli, serving

CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
JSON = {"content-type": "application/json"}
# Fixed, so a failure reproduces; 20 examples per operation keeps the run near 20 s.
SEED = "1"
EXAMPLES = "20"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`serve` on a SQLite file with no workers (nothing trains what schemathesis submits),
    its study limits at the hard caps and a write rate limit schemathesis stays under."""
    home = tmp_path_factory.mktemp("schemathesis")
    process = ServeProcess(
        home,
        database_url=f"sqlite:///{home / 'sweepdoc.db'}",
        workers=0,
        env_overrides={
            "SWEEPDOC_WRITE_RATE_LIMIT": "100000/minute",
            "SWEEPDOC_MAX_EPOCHS": "1000",
            "SWEEPDOC_MAX_TRIALS_PER_STUDY": "1000",
            "SWEEPDOC_MAX_QUEUED_STUDIES": "100000",
        },
    )
    with serving(process, workers=0):
        yield process


def schemathesis(server: ServeProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`schemathesis run` against *server*'s OpenAPI description, every check enabled (its
    default; the config file only says which statuses are right where the schema cannot)."""
    return subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(CONFIG),
            "run",
            f"{server.url}/openapi.json",
            "--seed",
            SEED,
            "--max-examples",
            EXAMPLES,
            "--workers",
            "2",
            # The API's contract for writes (README, "HTTP API"): JSON, body or not.
            "--header",
            "Content-Type: application/json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_stateful_phase_reaches_real_studies_and_trials(
    server: ServeProcess, tmp_path: Path
) -> None:
    """Through the links of `POST /v1/studies` and `GET /v1/studies/{id}/trials`, the
    stateful phase reads and cancels studies it created and reads their trials."""
    har = tmp_path / "stateful.har"

    # First in this module, on the fresh server, one worker and more scenarios than the
    # default (the seed alone does not fix the paths: the server answers at its own pace).
    run = schemathesis(
        server,
        "--phases",
        "stateful",
        "--workers",
        "1",
        "--max-examples",
        "100",
        # Only the studies' and trials' operations: the links under test are theirs; with
        # every operation (runs, plugins, diagnose…) in the draw the scenarios seldom walked
        # from a study to its trials.
        "--include-path-regex",
        "^/v1/(studies|trials)",
        # A trial's checkpoint is a documented 404 until the trial completes: by its status
        # a real trial reached there looks like an unknown id, which the check below counts.
        "--exclude-path-regex",
        "/checkpoint$",
        "--report",
        "har",
        "--report-har-path",
        str(har),
    )

    assert run.returncode == 0, run.stdout[-6000:]
    requests = [
        (
            entry["request"]["method"],
            _route_of(httpx.URL(entry["request"]["url"]).path),
            entry["response"]["status"],
        )
        for entry in json.loads(har.read_text())["log"]["entries"]
    ]
    succeeded = {(method, route) for method, route, status in requests if status < 300}
    assert ("POST", "/v1/studies") in succeeded
    assert ("GET", "/v1/studies/{id}/trials") in succeeded
    assert ("POST", "/v1/studies/{id}/cancel") in succeeded
    # A real trial id, from a listing: its detail, its plot, or its diagnosis (409 before
    # the trial ran); an id that does not exist would be 404, one out of range 422.
    reached = [s for m, route, s in requests if route.startswith("/v1/trials/{id}")]
    assert any(status not in (404, 422) for status in reached), reached


def _route_of(path: str) -> str:
    """*path* with its ids replaced by ``{id}``: which route a request took."""
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def test_schemathesis_with_every_check_and_phase_finds_nothing(server: ServeProcess) -> None:
    run = schemathesis(server)

    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅  {phase}" in run.stdout, run.stdout[-3000:]


@pytest.mark.parametrize("body", [b"\x80", b"\xff", b'{"dataset": "\xe9"}'])
def test_a_body_that_is_not_utf8_is_422_invalid_request(server: ServeProcess, body: bytes) -> None:
    for path in ("/v1/studies", "/v1/diagnose"):
        response = server.http.post(path, content=body, headers=JSON)

        assert response.status_code == 422, response.text
        assert response.json()["code"] == "invalid_request"
        assert "not valid JSON" in response.json()["message"]


@pytest.mark.parametrize(("method", "path", "allow"), METHODS_NOT_ALLOWED)
def test_a_method_the_api_lacks_is_405_with_allow_even_without_json(
    server: ServeProcess, method: str, path: str, allow: str
) -> None:
    response = server.http.request(method, path)  # no Content-Type: still a 405, not a 415

    assert response.status_code == 405, response.text
    assert response.headers["allow"] == allow
    assert response.json()["code"] == "method_not_allowed"


def test_readyz_documents_its_503(server: ServeProcess) -> None:
    described = server.get("/openapi.json")["paths"]["/readyz"]["get"]["responses"]

    assert server.http.get("/readyz").status_code == 503  # no worker in this server
    assert described["503"]["content"]["application/json"]["schema"]


def test_the_cli_cancels_then_deletes_a_study(server: ServeProcess) -> None:
    created = server.http.post("/v1/studies", json=tiny_spec("cli-delete"), headers=JSON)
    assert created.status_code == 201, created.text
    study_id = str(created.json()["id"])

    refused = run_cli("delete", study_id, SWEEPDOC_URL=server.url)
    cancelled = run_cli("cancel", study_id, SWEEPDOC_URL=server.url)
    deleted = run_cli("delete", study_id, SWEEPDOC_URL=server.url)

    assert refused.returncode == 1 and "cancel it first" in refused.stderr, refused.stderr
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout, cancelled.stderr
    assert deleted.returncode == 0 and f"study {study_id} deleted" in deleted.stdout
    assert server.http.get(f"/v1/studies/{study_id}").status_code == 404
