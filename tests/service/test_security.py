"""SWEEPDOC_API_TOKEN: what it guards (every /v1 write, the whole dashboard, /v1 reads unless
public), the browser login, the CLI sending it, `serve` refusing an open non-loopback address,
and secrets (the token, a database password) never showing in logs, errors or responses.

In-process checks use the real app on a real SQLite file; the end-to-end ones a real
`sweepdoc serve` process on PostgreSQL with a password in its URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from service.api import create_app
from service.commands.serve import check_exposure
from service.settings import Settings
from studies import queue
from tests.postgres_server import create_database
from tests.service.factory import healthy_curves, tiny_spec
from tests.service.serve_process import ServeProcess, free_port, run_cli

TOKEN = "test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DB_PASSWORD = "pg-password-4e7b1c9d"

# The dashboard's own routes (optuna-dashboard 0.21), reads and the writes that delete.
DASHBOARD_READS = [
    "/",
    "/dashboard",
    "/dashboard/studies/1",
    "/api/meta",
    "/api/studies",
    "/api/studies/1",
    "/api/studies/1/param_importances",
    "/artifacts/1/1/x",
    "/csv/1",
    "/static/bundle.js",
    "/favicon.ico",
]
DASHBOARD_WRITES = [
    ("DELETE", "/api/studies/1"),
    ("POST", "/api/studies"),
    ("PUT", "/api/studies/1/note"),
    ("POST", "/api/studies/1/rename"),
]


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    settings = Settings(home=tmp_path / "home", database_url=None, api_token=TOKEN, **overrides)
    return TestClient(create_app(settings))


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[TestClient]:
    """The real app with a token, one study in it (id 1, also study 1 of the dashboard)."""
    with make_client(tmp_path) as client:
        response = client.post("/v1/studies", json=tiny_spec("guarded"), headers=BEARER)
        assert response.status_code == 201, response.text
        yield client


def v1_operations() -> list[tuple[str, str]]:
    """Every /v1 operation the API documents, path parameters filled with 1."""
    app = create_app(Settings(home=Path("/nonexistent"), database_url="sqlite://"))
    return [
        (method.upper(), path.replace("{study_id}", "1").replace("{trial_id}", "1"))
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    ]


V1_OPERATIONS = v1_operations()


def request_body(method: str, path: str) -> dict[str, Any] | None:
    if path == "/v1/studies" and method == "POST":
        return tiny_spec("intruder")
    if path == "/v1/diagnose":
        return healthy_curves()
    return None


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text


def test_every_v1_operation_needs_the_token(secured: TestClient) -> None:
    assert {m for m, _ in V1_OPERATIONS} == {"GET", "POST"}
    assert len(V1_OPERATIONS) >= 9
    for method, path in V1_OPERATIONS:
        body = request_body(method, path)
        assert_unauthorized(secured.request(method, path, json=body))
        wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
        assert_unauthorized(secured.request(method, path, json=body, headers=wrong))
        assert "not valid" in secured.request(method, path, headers=wrong).json()["message"]
        authorized = secured.request(method, path, json=body, headers=BEARER)
        # With the token the request reaches its handler (which may answer 409 or 404).
        assert authorized.status_code not in (401, 403), (method, path, authorized.text)
        assert authorized.status_code < 500, (method, path, authorized.text)
    assert_unauthorized(secured.delete("/v1/no-such-endpoint"))  # unknown paths too
    # Only the authorized requests took effect: one more study, not three.
    listed = secured.get("/v1/studies", headers=BEARER).json()["data"]
    assert [s["name"] for s in listed] == ["intruder", "guarded"]


@pytest.mark.parametrize("path", DASHBOARD_READS)
def test_the_whole_dashboard_needs_the_token(secured: TestClient, path: str) -> None:
    assert_unauthorized(secured.get(path))
    assert_unauthorized(secured.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    authorized = secured.get(path, headers=BEARER)
    assert authorized.status_code != 401, authorized.text


def test_the_dashboard_cannot_delete_or_change_studies_without_the_token(
    secured: TestClient,
) -> None:
    for method, path in DASHBOARD_WRITES:
        assert_unauthorized(secured.request(method, path, json={"study_name": "x"}))
    studies = secured.get("/api/studies", headers=BEARER).json()["study_summaries"]
    assert [s["study_name"].split("-")[0] for s in studies] == ["guarded"]
    # With the token the same delete goes through: the check was the token, nothing else.
    assert secured.delete("/api/studies/1", headers=BEARER).status_code == 204
    assert secured.get("/api/studies", headers=BEARER).json()["study_summaries"] == []


def test_public_reads_open_v1_reads_but_not_writes_nor_the_dashboard(tmp_path: Path) -> None:
    with make_client(tmp_path, public_reads=True) as client:
        assert client.post("/v1/studies", json=tiny_spec("p"), headers=BEARER).status_code == 201
        for method, path in V1_OPERATIONS:
            response = client.request(method, path, json=request_body(method, path))
            if method == "GET":
                assert response.status_code != 401, (path, response.text)
            else:
                assert_unauthorized(response)
        assert_unauthorized(client.get("/api/studies"))


def test_health_probes_stay_open_and_readyz_hides_the_workers(secured: TestClient) -> None:
    database = secured.app.state.database  # type: ignore[attr-defined]
    queue.touch_worker(
        database, name="w-secret-host", host="secret-host", pid=4242, device="cpu",
        current_trial_id=None,
    )
    assert secured.get("/healthz").status_code == 200
    open_ready = secured.get("/readyz")
    assert open_ready.json()["workers_seen"] == 1
    assert open_ready.json()["workers"] == []
    assert "secret-host" not in open_ready.text
    with_token = secured.get("/readyz", headers=BEARER).json()
    assert [w["host"] for w in with_token["workers"]] == ["secret-host"]


def test_browser_login_sets_a_strict_httponly_cookie_and_returns_to_the_page(
    secured: TestClient,
) -> None:
    page = secured.get(
        "/dashboard/studies/1", headers={"Accept": "text/html"}, follow_redirects=False
    )
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2Fdashboard%2Fstudies%2F1"
    form = secured.get(page.headers["location"])
    assert form.status_code == 200 and 'name="token"' in form.text

    refused = secured.post("/login", data={"token": "guess", "next": "/dashboard"})
    assert refused.status_code == 401 and "Wrong token" in refused.text
    assert "sweepdoc_session" not in refused.headers.get("set-cookie", "")

    login = secured.post(
        "/login", data={"token": TOKEN, "next": "/dashboard/studies/1"}, follow_redirects=False
    )
    assert login.status_code == 303 and login.headers["location"] == "/dashboard/studies/1"
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token
    assert secured.get("/api/studies").status_code == 200  # the client keeps the cookie
    assert secured.get("/v1/studies").status_code == 200

    secured.get("/logout")
    assert_unauthorized(secured.get("/api/studies"))


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example", "\\\\evil"])
def test_login_never_redirects_off_site(secured: TestClient, target: str) -> None:
    login = secured.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
    assert login.headers["location"] == "/dashboard"


def test_openapi_declares_the_bearer_scheme_and_the_401(secured: TestClient) -> None:
    schema = secured.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    create = schema["paths"]["/v1/studies"]["post"]
    assert "401" in create["responses"] and create["security"] == [{"token": []}]


@pytest.mark.parametrize(
    ("host", "has_token", "refused"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("0.0.0.0", False, True),
        ("192.168.1.10", False, True),
        ("example.internal", False, True),
        ("0.0.0.0", True, False),
    ],
)
def test_only_loopback_may_be_served_without_a_token(
    host: str, has_token: bool, refused: bool
) -> None:
    assert (check_exposure(host, has_token=has_token) is not None) == refused


@pytest.mark.parametrize(
    ("token", "problem"),
    [
        ("short-token", "16"),
        ("with a space in the middle", "spaces"),
        ("tøken-0123456789abc", "ASCII"),
    ],
)
def test_weak_or_malformed_tokens_are_refused_without_echoing_them(
    tmp_path: Path, token: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as refused:
        Settings(home=tmp_path, api_token=token)
    assert token not in str(refused.value)


def test_an_empty_token_means_none_and_settings_never_print_a_password(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, api_token="").api_token is None
    url = f"postgresql+psycopg://sweepdoc:{DB_PASSWORD}@db.example/sweepdoc"
    settings = Settings(home=tmp_path, database_url=url, api_token=TOKEN)
    assert DB_PASSWORD not in repr(settings) and TOKEN not in repr(settings)
    assert settings.resolved_database_url == url  # redacted for show only


def test_serve_refuses_a_non_loopback_address_without_a_token(tmp_path: Path) -> None:
    port = str(free_port())
    refused = run_cli(
        "serve", "--host", "0.0.0.0", "--port", port, "--workers", "0",
        SWEEPDOC_HOME=str(tmp_path),
    )
    assert refused.returncode == 2
    lines = [line for line in refused.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, refused.stderr
    assert "SWEEPDOC_API_TOKEN" in lines[0] and "--insecure" in lines[0]
    assert not (tmp_path / "sweepdoc.db").exists()  # refused before touching anything


def test_a_short_token_is_refused_without_echoing_it(tmp_path: Path) -> None:
    weak = "hunter2-weak"
    run = run_cli("status", SWEEPDOC_HOME=str(tmp_path), SWEEPDOC_API_TOKEN=weak)
    assert run.returncode == 2
    assert "SWEEPDOC_API_TOKEN" in run.stderr and "16" in run.stderr
    assert weak not in run.stdout + run.stderr and "Traceback" not in run.stderr


class TokenServe(ServeProcess):
    """`sweepdoc serve` with a token (and whatever else *extra* sets)."""

    def __init__(self, home: Path, *, database_url: str, extra: dict[str, str]) -> None:
        super().__init__(home, database_url=database_url, workers=0)
        self.extra = extra

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(self.extra)
        return env


@pytest.fixture(scope="module")
def token_server(
    postgres_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TokenServe]:
    """A real server with a token, on PostgreSQL with a password in its URL."""
    plain = create_database(postgres_server)
    with_password = plain.replace("://postgres@", f"://postgres:{DB_PASSWORD}@")
    assert DB_PASSWORD in with_password
    server = TokenServe(
        tmp_path_factory.mktemp("token-serve"),
        database_url=with_password,
        extra={"SWEEPDOC_API_TOKEN": TOKEN},
    )
    server.http.headers.update(BEARER)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.mark.postgres
def test_the_cli_sends_the_token_from_its_settings(
    token_server: TokenServe, tmp_path: Path
) -> None:
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec("cli-with-token")))
    url = ["--url", token_server.url]

    without = run_cli("status", *url)
    submitted = run_cli("submit", str(spec_file), *url, SWEEPDOC_API_TOKEN=TOKEN)
    listed = run_cli("status", *url, SWEEPDOC_API_TOKEN=TOKEN)

    assert without.returncode == 1 and "requires a token" in without.stderr
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted study" in submitted.stdout
    assert listed.returncode == 0 and "cli-with-token" in listed.stdout
    for run in (without, submitted, listed):
        assert TOKEN not in run.stdout + run.stderr


@pytest.mark.postgres
def test_secrets_never_reach_logs_errors_or_responses(token_server: TokenServe) -> None:
    http = token_server.http
    answers = [
        http.post("/v1/studies", json=tiny_spec("secret-check")),
        http.post("/v1/studies", json={"dataset": "nope", "train": {"epochs": 0}}),
        http.post("/v1/studies", content=b"{oops", headers={"content-type": "application/json"}),
        http.get("/v1/studies"),
        http.get("/v1/studies/999"),
        http.get("/v1/trials/1"),
        http.get("/readyz"),
        http.get("/openapi.json"),
        http.get("/api/studies"),
        http.get("/v1/studies", headers={"Authorization": "Bearer wrong-token-wrong-token"}),
        http.get("/dashboard", headers={"Authorization": "", "Accept": "text/html"}),
        http.post("/login", data={"token": "wrong"}, headers={"Authorization": ""}),
        http.post("/login", data={"token": TOKEN}, headers={"Authorization": ""}),
    ]
    assert answers[0].status_code == 201 and answers[1].status_code == 422
    # A real worker on the same URL (password included) trains the queue and logs as it goes.
    worker = run_cli(
        "worker", "--device", "cpu", "--torch-threads", "1", "--exit-when-idle",
        SWEEPDOC_HOME=str(token_server.home), SWEEPDOC_DATABASE_URL=token_server.database_url,
    )
    assert worker.returncode == 0, worker.stdout + worker.stderr
    study = http.get(f"/v1/studies/{answers[0].json()['id']}").json()
    assert study["status"] == "completed"
    answers += [http.get(f"/v1/studies/{study['id']}/trials"), http.get("/v1/trials/1")]
    exposed = "\n".join(f"{r.status_code} {r.headers} {r.text}" for r in answers)
    log = token_server.log() + worker.stdout + worker.stderr
    assert "sweepdoc serving on" in log and "postgres:***@" in log  # redacted, not absent
    for secret in (TOKEN, DB_PASSWORD):
        assert secret not in exposed
        assert secret not in log


@pytest.mark.postgres
def test_a_failing_database_url_is_reported_without_its_password(
    postgres_server: str, tmp_path: Path
) -> None:
    missing = postgres_server.rsplit("/", 1)[0].replace(
        "://postgres@", f"://postgres:{DB_PASSWORD}@"
    ) + "/no_such_database"
    run = run_cli(
        "serve", "--port", str(free_port()), "--workers", "0",
        SWEEPDOC_HOME=str(tmp_path), SWEEPDOC_DATABASE_URL=missing, SWEEPDOC_API_TOKEN=TOKEN,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "cannot open the database" in run.stdout + run.stderr
    for secret in (TOKEN, DB_PASSWORD):
        assert secret not in run.stdout + run.stderr


@pytest.mark.postgres
@pytest.mark.browser
def test_a_browser_logs_in_and_sees_the_dashboard(token_server: TokenServe) -> None:
    from playwright.sync_api import sync_playwright

    from tests.service.browser import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS

    response = token_server.http.post("/v1/studies", json=tiny_spec("seen-after-login"))
    name = response.json()["optuna_study_name"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{token_server.url}/dashboard")
            assert "/login" in page.url  # sent to the login page, not shown the dashboard
            page.fill("input[name=token]", TOKEN)
            page.click("input[type=submit]")
            page.get_by_text(name).first.wait_for()
            assert "/dashboard" in page.url and "/login" not in page.url
            assert name in page.inner_text("body")
        finally:
            browser.close()
