"""SWEEPDOC_API_TOKEN: what it guards (every /v1 write, the whole dashboard, /v1 reads unless
public), the browser login and its session's life (expiry, forgery, server-side logout), the
CLI sending it, `serve` refusing an open non-loopback address, and secrets (the token, a
database password) never showing in logs, errors or responses. And what keeps a web page from
driving a local server: only the server's own host names are answered (DNS rebinding),
writes from another origin or without JSON are refused (cross-site requests), `/login` is
rate-limited.

In-process checks use the real app on a real SQLite file; the end-to-end ones a real
`sweepdoc serve` process (SQLite, or PostgreSQL with a password in its URL) and real Chromium.
"""

from __future__ import annotations

import hashlib
import hmac
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from service.api import create_app
from service.api.sessions import VALID_AFTER_FILE
from service.client import SweepdocClient
from service.commands.serve import check_exposure, server_names
from service.settings import Settings
from studies import queue
from studies.spec import StudySpec
from tests.postgres_server import create_database
from tests.service.factory import healthy_curves, tiny_spec
from tests.service.serve_process import REPO, ServeProcess, free_port, run_cli

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


JSON = {"content-type": "application/json"}
# The origin Starlette's TestClient addresses the app as (its Host is `testserver`).
OWN_ORIGIN = "http://testserver"


def make_client(tmp_path: Path, **overrides: Any) -> TestClient:
    overrides.setdefault("api_token", TOKEN)
    settings = Settings(home=tmp_path / "home", database_url=None, **overrides)
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
        (
            method.upper(),
            path.replace("{study_id}", "1").replace("{trial_id}", "1").replace("{run_id}", "1"),
        )
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


# What each /v1 operation answers with the token, on the `secured` app (study 1 queued, its
# trial 1 waiting): exact, so a route that breaks (a 500, a 404) fails here, not just a 401.
V1_AUTHORIZED_STATUS = {
    ("POST", "/v1/studies"): 201,
    ("GET", "/v1/studies"): 200,
    ("GET", "/v1/studies/1"): 200,
    ("DELETE", "/v1/studies/1"): 409,  # still queued: cancel it first
    ("POST", "/v1/studies/1/cancel"): 200,
    ("GET", "/v1/studies/1/diagnosis"): 200,
    ("GET", "/v1/studies/1/lr.png"): 200,
    ("GET", "/v1/studies/1/chain"): 200,
    ("GET", "/v1/studies/1/lr_range.png"): 404,  # not a range test: says so
    ("GET", "/v1/studies/1/trials"): 200,
    ("GET", "/v1/trials/1"): 200,
    ("GET", "/v1/trials/1/diagnosis"): 409,  # no epoch recorded yet: a conflict, says so
    ("GET", "/v1/trials/1/curves.png"): 200,
    ("GET", "/v1/trials/1/checkpoint"): 404,  # still waiting: no checkpoint yet, says why
    ("GET", "/v1/plugins"): 200,
    ("POST", "/v1/diagnose"): 200,
    # No run exists (an empty POST /v1/runs is refused), so each run's route says 404.
    ("POST", "/v1/runs"): 422,
    ("GET", "/v1/runs"): 200,
    ("GET", "/v1/runs/1"): 404,
    ("POST", "/v1/runs/1/epochs"): 422,  # no body
    ("POST", "/v1/runs/1/finish"): 404,
    ("GET", "/v1/runs/1/diagnosis"): 404,
    ("DELETE", "/v1/runs/1"): 404,
}
# The same for the dashboard's pages and files (study 1 exists; artifact x does not).
DASHBOARD_AUTHORIZED_STATUS = {
    "/": 302,  # to /dashboard
    "/artifacts/1/1/x": 404,
}


def assert_unauthorized(response: Any) -> None:
    assert response.status_code == 401, (response.request.url, response.text)
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in response.text


def test_every_v1_operation_needs_the_token(secured: TestClient) -> None:
    assert set(V1_OPERATIONS) == set(V1_AUTHORIZED_STATUS), "a new operation: add its status"
    for method, path in V1_OPERATIONS:
        body = request_body(method, path)
        assert_unauthorized(secured.request(method, path, json=body, headers=JSON))
        wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x", **JSON}
        refused = secured.request(method, path, json=body, headers=wrong)
        assert_unauthorized(refused)
        assert "not valid" in refused.json()["message"]
        authorized = secured.request(method, path, json=body, headers={**BEARER, **JSON})
        # With the token the request reaches its handler and gets that handler's answer.
        expected = V1_AUTHORIZED_STATUS[(method, path)]
        assert authorized.status_code == expected, (method, path, authorized.text)
    assert_unauthorized(secured.delete("/v1/no-such-endpoint", headers=JSON))  # unknown paths
    # Only the authorized requests took effect: one more study, not three.
    listed = secured.get("/v1/studies", headers=BEARER).json()["data"]
    assert [s["name"] for s in listed] == ["intruder", "guarded"]


@pytest.mark.parametrize("path", DASHBOARD_READS)
def test_the_whole_dashboard_needs_the_token(secured: TestClient, path: str) -> None:
    assert_unauthorized(secured.get(path))
    assert_unauthorized(secured.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"}))
    authorized = secured.get(path, headers=BEARER, follow_redirects=False)
    assert authorized.status_code == DASHBOARD_AUTHORIZED_STATUS.get(path, 200), authorized.text


def test_the_dashboard_cannot_delete_or_change_studies_without_the_token(
    secured: TestClient,
) -> None:
    for method, path in DASHBOARD_WRITES:
        assert_unauthorized(secured.request(method, path, json={"study_name": "x"}))
        assert_unauthorized(secured.request(method, path, headers={"Origin": OWN_ORIGIN}))
    studies = secured.get("/api/studies", headers=BEARER).json()["study_summaries"]
    assert [s["study_name"].split("-")[0] for s in studies] == ["guarded"]
    # With the token the same delete goes through: the check was the token, nothing else.
    assert secured.delete("/api/studies/1", headers=BEARER).status_code == 204
    assert secured.get("/api/studies", headers=BEARER).json()["study_summaries"] == []


def test_public_reads_open_v1_reads_but_not_writes_nor_the_dashboard(tmp_path: Path) -> None:
    with make_client(tmp_path, public_reads=True) as client:
        assert client.post("/v1/studies", json=tiny_spec("p"), headers=BEARER).status_code == 201
        for method, path in V1_OPERATIONS:
            response = client.request(method, path, json=request_body(method, path), headers=JSON)
            if method == "GET":
                expected = V1_AUTHORIZED_STATUS[(method, path)]
                assert response.status_code == expected, (path, response.text)
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
    from tests.service.browser import chromium_page

    response = token_server.http.post("/v1/studies", json=tiny_spec("seen-after-login"))
    name = response.json()["optuna_study_name"]
    with chromium_page() as page:
        page.goto(f"{token_server.url}/dashboard")
        assert "/login" in page.url  # sent to the login page, not shown the dashboard
        page.fill("input[name=token]", TOKEN)
        page.click("input[type=submit]")
        page.get_by_text(name).first.wait_for()
        assert "/dashboard" in page.url and "/login" not in page.url
        assert name in page.inner_text("body")


# --- Sessions: expiry, forgery, server-side logout ---------------------------------------


def login_cookie(client: TestClient) -> str:
    """Log *client* in through the form; the session cookie's value."""
    login = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert login.status_code == 303, login.text
    return str(login.cookies["sweepdoc_session"])


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"sweepdoc_session={value}"}


def test_the_session_cookie_expires_with_its_signed_value_and_max_age(tmp_path: Path) -> None:
    with make_client(tmp_path, session_ttl_s=3600) as client:
        before = time.time()
        login = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert "Max-Age=3600" in login.headers["set-cookie"]
        issued_ns, expires_s, _ = login.cookies["sweepdoc_session"].split(".")
        assert before <= int(issued_ns) / 1e9 <= time.time()
        assert int(expires_s) == int(int(issued_ns) / 1e9 + 3600)


def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    ttl_s = 3600
    with make_client(tmp_path, session_ttl_s=ttl_s) as client:
        sessions = client.app.state.token_check.sessions  # type: ignore[attr-defined]
        now_ns = time.time_ns()
        expired = sessions.issue(now_ns=now_ns - (ttl_s + 5) * 10**9)
        still_valid = sessions.issue(now_ns=now_ns - (ttl_s - 60) * 10**9)
        assert_unauthorized(client.get("/api/studies", headers=with_cookie(expired)))
        assert_unauthorized(client.get("/v1/studies", headers=with_cookie(expired)))
        # The same server's cookie a minute before its end still works: it is the age.
        assert client.get("/api/studies", headers=with_cookie(still_valid)).status_code == 200


def forged_cookies(genuine: str) -> dict[str, str]:
    """Cookies an attacker could make without the token, from a genuine one they saw."""
    issued, expires, signature = genuine.split(".")
    old_format = hmac.new(
        TOKEN.encode(), b"sweepdoc dashboard session v1", hashlib.sha256
    ).hexdigest()  # the value the cookie had before it expired (it never did)
    other_key = hmac.new(b"another-token-0123456789", b"x", hashlib.sha256).digest()
    payload = f"{issued}.{int(expires) + 10**6}"
    resigned = hmac.new(other_key, payload.encode(), hashlib.sha256).hexdigest()
    return {
        "extended": f"{payload}.{signature}",
        "resigned": f"{payload}.{resigned}",
        "truncated-signature": f"{issued}.{expires}.{signature[:-2]}",
        "old-unexpiring-format": old_format,
        "garbage": "1.2.3",
        "empty": "",
    }


def test_forged_session_cookies_are_refused(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        genuine = login_cookie(client)
        client.cookies.clear()
        assert client.get("/api/studies", headers=with_cookie(genuine)).status_code == 200
        for kind, value in forged_cookies(genuine).items():
            response = client.get("/api/studies", headers=with_cookie(value))
            assert response.status_code == 401, kind


def test_logout_revokes_the_session_on_the_server(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        copied = login_cookie(client)
        assert client.get("/logout", follow_redirects=False).status_code == 303
        client.cookies.clear()
        # A copy of the cookie kept after logout (another tab, a stolen copy) is dead too.
        assert_unauthorized(client.get("/api/studies", headers=with_cookie(copied)))
        fresh = login_cookie(client)  # logging in again works at once
        assert client.get("/api/studies", headers=with_cookie(fresh)).status_code == 200

    # Another server process on the same home (a restart) still refuses the revoked one.
    with make_client(tmp_path) as restarted:
        assert_unauthorized(restarted.get("/api/studies", headers=with_cookie(copied)))
        assert restarted.get("/api/studies", headers=with_cookie(fresh)).status_code == 200


def test_logout_without_a_session_revokes_nothing(tmp_path: Path) -> None:
    # A foreign page's `<img src=http://127.0.0.1:8000/logout>` carries no cookie
    # (SameSite=Strict): it must not log everyone out.
    with make_client(tmp_path) as client:
        cookie = login_cookie(client)
        client.cookies.clear()
        client.get("/logout", headers={"Cookie": "sweepdoc_session=forged.1.x"})
        assert not (tmp_path / "home" / VALID_AFTER_FILE).exists()
        assert client.get("/api/studies", headers=with_cookie(cookie)).status_code == 200


@pytest.mark.parametrize("ttl", ["0", "-5", "forever", str(31 * 24 * 3600)])
def test_a_bad_session_lifetime_is_refused_naming_the_setting(tmp_path: Path, ttl: str) -> None:
    run = run_cli("status", SWEEPDOC_HOME=str(tmp_path), SWEEPDOC_SESSION_TTL_S=ttl)
    assert run.returncode == 2
    assert "SWEEPDOC_SESSION_TTL_S" in run.stderr and "Traceback" not in run.stderr


# --- /login rate limit ------------------------------------------------------------------


def test_login_attempts_are_rate_limited_per_client(tmp_path: Path) -> None:
    with make_client(tmp_path, login_rate_limit="3/minute") as client:
        for _ in range(3):
            assert client.post("/login", data={"token": "guess"}).status_code == 401
        limited = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "rate_limited"
        assert "SWEEPDOC_LOGIN_RATE_LIMIT" in limited.json()["message"]
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert "sweepdoc_session" not in limited.headers.get("set-cookie", "")
        # Only login attempts count: the form and the API still answer.
        assert client.get("/login").status_code == 200
        assert client.get("/v1/studies", headers=BEARER).status_code == 200


def test_a_bad_rate_is_refused_naming_the_setting(tmp_path: Path) -> None:
    run = run_cli("status", SWEEPDOC_HOME=str(tmp_path), SWEEPDOC_LOGIN_RATE_LIMIT="lots")
    assert run.returncode == 2
    assert "SWEEPDOC_LOGIN_RATE_LIMIT" in run.stderr and "10/minute" in run.stderr


# --- DNS rebinding: only the server's own host names ------------------------------------

FOREIGN_HOST = {"Host": "evil.example:8000"}


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[TestClient]:
    """The default server (no token), one study in it, answering `testserver` only besides
    loopback (as `serve` would its own address)."""
    with make_client(tmp_path, api_token=None, allowed_hosts=["testserver"]) as client:
        assert client.post("/v1/studies", json=tiny_spec("local")).status_code == 201
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/studies"),
        ("POST", "/v1/studies/1/cancel"),
        ("DELETE", "/api/studies/1"),
        ("GET", "/api/studies"),
        ("GET", "/dashboard"),
        ("GET", "/healthz"),
        ("GET", "/openapi.json"),
        ("GET", "/login"),
    ],
)
def test_a_foreign_host_is_refused_on_every_path(
    open_server: TestClient, method: str, path: str
) -> None:
    response = open_server.request(method, path, headers={**FOREIGN_HOST, **JSON})
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "host_not_allowed" and "SWEEPDOC_ALLOWED_HOSTS" in body["message"]
    # Nothing happened: the study is still there and still queued.
    assert open_server.get("/v1/studies/1").json()["status"] == "queued"
    assert len(open_server.get("/api/studies").json()["study_summaries"]) == 1


@pytest.mark.parametrize(
    ("host", "answered"),
    [
        ("127.0.0.1:8000", True),
        ("localhost:8000", True),
        ("LOCALHOST.", True),
        ("[::1]:8000", True),
        ("127.0.0.2", True),  # the whole loopback range
        ("proxy.example", True),  # SWEEPDOC_ALLOWED_HOSTS
        ("a.corp.example:443", True),  # ... *.corp.example
        ("corp.example", False),  # a subdomain wildcard is not its apex
        ("proxy.example.evil.example", False),
        ("localhost.evil.example", False),
        ("evil@localhost", False),
        ("localhost:notaport", False),
        ("", False),
    ],
)
def test_loopback_and_configured_hosts_are_answered(
    tmp_path: Path, host: str, answered: bool
) -> None:
    allowed = ["proxy.example", "*.corp.example"]
    with make_client(tmp_path, api_token=None, allowed_hosts=allowed) as client:
        response = client.get("/v1/studies", headers={"Host": host})
    assert response.status_code == (200 if answered else 400), response.text


def test_allowed_hosts_are_read_comma_separated_and_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWEEPDOC_ALLOWED_HOSTS", " proxy.example, *.corp.example ")
    assert Settings(home=tmp_path).allowed_hosts == ["proxy.example", "*.corp.example"]
    for bad in ("https://proxy.example", "proxy.example:8443", "proxy.example/x", "*corp.org"):
        monkeypatch.setenv("SWEEPDOC_ALLOWED_HOSTS", bad)
        with pytest.raises(ValueError, match="allowed_hosts"):
            Settings(home=tmp_path)


def test_serve_allows_the_address_it_listens_on() -> None:
    assert server_names("10.1.2.3") == ["10.1.2.3"]
    assert server_names("[2001:db8::1]") == ["2001:db8::1"]
    everywhere = server_names("0.0.0.0")
    assert socket.gethostname().lower() in everywhere


def test_serve_on_every_interface_answers_its_own_name_and_no_other(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "service", "serve", "--host", "0.0.0.0", "--insecure"]
    command += ["--port", str(port), "--workers", "0", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPDOC_")}
    env.update(SWEEPDOC_HOME=str(tmp_path), SWEEPDOC_ALLOWED_HOSTS="proxy.example")
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    http.get("/healthz")
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            for host, status in [
                (f"{socket.gethostname()}:{port}", 200),  # `serve` added its own name
                ("proxy.example", 200),  # SWEEPDOC_ALLOWED_HOSTS through the environment
                (f"127.0.0.1:{port}", 200),
                (f"evil.example:{port}", 400),
            ]:
                assert http.get("/v1/studies", headers={"Host": host}).status_code == status
    finally:
        process.kill()
        process.wait()


# --- Cross-site requests -----------------------------------------------------------------

V1_WRITES = [
    ("POST", "/v1/studies"),
    ("POST", "/v1/studies/1/cancel"),
    ("POST", "/v1/diagnose"),
    ("DELETE", "/v1/studies/1"),
]


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
@pytest.mark.parametrize(("method", "path"), V1_WRITES)
def test_every_v1_write_must_be_json(
    open_server: TestClient, method: str, path: str, content_type: str | None
) -> None:
    # What a plain HTML form (or a no-preflight fetch) can send: refused before any handler.
    headers = {"content-type": content_type} if content_type else {}
    response = open_server.request(method, path, content=b"name=x", headers=headers)
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "unsupported_media_type"
    assert open_server.get("/v1/studies/1").json()["status"] == "queued"
    assert open_server.get("/v1/studies").json()["count"] == 1


def test_a_body_less_cancel_with_the_json_type_goes_through(open_server: TestClient) -> None:
    charset = {"content-type": "application/json; charset=utf-8"}
    cancelled = open_server.post("/v1/studies/1/cancel", headers=charset)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "http://testserver:8001"},  # same host, another port: SameSite cannot tell
    {"Origin": "https://testserver"},  # another scheme
    {"Origin": "null"},  # a sandboxed frame or a file: page
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
    {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "cross-site"},
]


@pytest.mark.parametrize("sender", CROSS_SITE, ids=lambda h: ",".join(h.values()))
def test_writes_from_another_origin_are_refused_everywhere(
    open_server: TestClient, sender: dict[str, str]
) -> None:
    for method, path in [*V1_WRITES, *DASHBOARD_WRITES, ("POST", "/login")]:
        response = open_server.request(method, path, json={}, headers=sender)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["code"] == "cross_site_request"
    assert open_server.get("/v1/studies/1").json()["status"] == "queued"
    assert len(open_server.get("/api/studies").json()["study_summaries"]) == 1


def test_the_servers_own_origin_may_write_and_reads_are_never_refused(
    open_server: TestClient,
) -> None:
    own = {"Origin": OWN_ORIGIN, "Sec-Fetch-Site": "same-origin"}
    foreign = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert open_server.get("/v1/studies/1", headers=foreign).status_code == 200
    assert open_server.post("/v1/studies/1/cancel", headers={**own, **JSON}).status_code == 200
    # The dashboard's own delete, as its page sends it (no JSON type: /api is not /v1).
    assert open_server.delete("/api/studies/1", headers=own).status_code == 204
    assert open_server.get("/api/studies").json()["study_summaries"] == []


def test_a_logged_in_cookie_cannot_be_used_from_another_port(secured: TestClient) -> None:
    # The issue's reproduction: with a token, a page on another port of the same host rode
    # the login cookie (SameSite ignores ports) and cancelled with a foreign Origin.
    login_cookie(secured)
    other_port = {"Origin": "http://testserver:9999", **JSON}
    assert secured.post("/v1/studies/1/cancel", headers=other_port).status_code == 403
    assert secured.delete("/api/studies/1", headers=other_port).status_code == 403
    assert secured.get("/v1/studies/1").json()["status"] == "queued"
    same = {"Origin": OWN_ORIGIN, **JSON}
    assert secured.post("/v1/studies/1/cancel", headers=same).status_code == 200


def test_the_cli_client_writes_as_json(tmp_path: Path) -> None:
    server = ServeProcess(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", workers=0
    )
    server.start()
    try:
        with SweepdocClient(server.url) as client:
            study = client.submit(StudySpec.model_validate(tiny_spec("via-client")))
            assert client.cancel(study.id).status == "cancelled"  # a body-less write
    finally:
        server.kill()


# --- A real browser: the dashboard still works, a page of another origin cannot write ------

ATTACK_PAGE = """<!doctype html><html><body>
<form id="f" method="post" action="{target}/v1/studies/{study_id}/cancel">
<input name="x" value="1"></form>
<script>
fetch("{target}/api/studies/{study_id}", {{method: "DELETE", mode: "no-cors",
                                          credentials: "include"}}).finally(
    () => document.getElementById("f").submit());
</script></body></html>"""


@contextmanager
def foreign_site(page: str) -> Iterator[str]:
    """*page* served at `/` by a plain HTTP server on another port of this host."""
    body = page.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.browser
def test_a_browser_uses_the_dashboard_and_a_foreign_page_cannot_write(tmp_path: Path) -> None:
    from tests.service.browser import chromium_page

    server = ServeProcess(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        workers=0,
        env_overrides={"SWEEPDOC_API_TOKEN": TOKEN},
    )
    server.http.headers.update(BEARER)
    server.start()
    try:
        kept = server.http.post("/v1/studies", json=tiny_spec("kept")).json()
        doomed = server.http.post("/v1/studies", json=tiny_spec("doomed")).json()
        with chromium_page() as page:
            page.goto(f"{server.url}/dashboard")
            page.fill("input[name=token]", TOKEN)  # a same-origin form POST to /login
            page.click("input[type=submit]")
            page.get_by_text(kept["optuna_study_name"]).first.wait_for()

            # A page on another port of the same host (same site: the Strict cookie goes
            # along), auto-submitting a form and a no-cors fetch at the dashboard's study 1.
            attack = ATTACK_PAGE.format(target=server.url, study_id=kept["id"])
            with foreign_site(attack) as attacker:
                with page.expect_navigation():
                    page.goto(attacker)
                assert "cross_site_request" in page.inner_text("body")

            # The dashboard's own writes, as its scripts send them (same origin).
            page.goto(f"{server.url}/dashboard")
            statuses = page.evaluate(
                """async ([doomedId]) => [
                    (await fetch(`/v1/studies/${doomedId}/cancel`, {method: "POST",
                        headers: {"content-type": "application/json"}})).status,
                    (await fetch(`/api/studies/${doomedId}`, {method: "DELETE"})).status,
                ]""",
                [doomed["id"]],
            )
            assert statuses == [200, 204]
        assert server.get(f"/v1/studies/{kept['id']}")["status"] == "queued"
        listed = server.http.get("/api/studies").json()["study_summaries"]
        assert [s["study_name"] for s in listed] == [kept["optuna_study_name"]]
    finally:
        server.kill()
