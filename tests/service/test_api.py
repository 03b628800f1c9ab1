"""The HTTP API's contract, in-process on a real SQLite file: shapes, errors, validation."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import text

from service.api import create_app
from service.settings import Settings
from studies.db import Database, TrialState
from tests.service.factory import (
    METHODS_NOT_ALLOWED,
    diverged_curves,
    healthy_curves,
    tiny_spec,
)
from tests.studies.test_store import BEST_TRIAL_GRID, BEST_TRIAL_STUDIES, Outcome, run_outcomes

STUDY_KEYS = {"id", "name", "status", "spec", "counts", "best_trial", "progress", "created_at",
              "url", "optuna_study_name", "trial_count"}
TRIAL_KEYS = {"id", "study_id", "number", "state", "params", "label", "final_val_acc",
              "best_val_acc", "final_val_loss", "epochs_done"}
STATES = {"waiting", "running", "complete", "pruned", "failed"}


def submit(api: TestClient, spec: dict[str, Any]) -> dict[str, Any]:
    response = api.post("/v1/studies", json=spec)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert body["message"]
    assert "Traceback" not in response.text
    return body


def test_submit_returns_201_with_the_study_and_its_url(api: TestClient) -> None:
    response = api.post("/v1/studies", json=tiny_spec("shape-check"))

    assert response.status_code == 201
    study = response.json()
    assert study.keys() >= STUDY_KEYS
    assert isinstance(study["id"], int)
    assert study["name"] == "shape-check"
    assert study["status"] == "queued"
    assert study["counts"] == {"waiting": 2, "running": 0, "complete": 0, "pruned": 0, "failed": 0}
    assert study["progress"] == 0.0
    assert study["best_trial"] is None
    assert study["spec"]["train"]["epochs"] == 2
    assert datetime.fromisoformat(study["created_at"]).tzinfo is not None
    assert study["url"] == f"/v1/studies/{study['id']}"
    assert response.headers["location"].endswith(study["url"])
    assert api.get(study["url"]).json()["id"] == study["id"]


def test_dataset_alone_is_a_valid_study_with_the_seeds_five_learning_rates(
    api: TestClient,
) -> None:
    study = submit(api, {"dataset": "digits"})

    trials = api.get(f"/v1/studies/{study['id']}/trials").json()
    assert trials["count"] == 5
    assert sorted(t["params"]["lr"] for t in trials["data"]) == [1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    for trial in trials["data"]:
        assert trial.keys() >= TRIAL_KEYS
        assert trial["state"] == "waiting"
        assert trial["study_id"] == study["id"]
        assert trial["label"] is None


@pytest.mark.parametrize(
    ("spec", "field", "reason"),
    [
        ({}, "dataset", "required"),
        ({"dataset": "digits", "trian": {}}, "trian", "extra"),
        ({"dataset": "digits", "train": {"epochs": 0}}, "train.epochs", "greater than"),
        ({"dataset": "digits", "train": {"epochs": 10**9}}, "train.epochs", "less than"),
        ({"dataset": "digits", "train": {"batch_size": 0}}, "train.batch_size", "greater than"),
        ({"dataset": "digits", "train": {"epochs": "ten"}}, "train.epochs", "integer"),
        ({"dataset": "imagenet"}, "dataset", "unknown dataset"),
        ({"dataset": "imagefolder:../etc"}, "dataset", ".."),
        ({"dataset": "digits", "model": {"arch": "alexnet"}}, "model.arch", "simple"),
        (
            {"dataset": "digits", "search": {"lr_low": 0.1, "lr_high": 0.001}},
            "search.lr_low",
            "lr_high",
        ),
        ({"dataset": "digits", "search": {"lr_low": -1}}, "search.lr_low", "greater than"),
        (
            {"dataset": "digits", "search": {"sampler": "random", "n_trials": 10_000}},
            "search.n_trials",
            "less than",
        ),
    ],
    ids=[
        "missing-dataset", "unknown-field", "zero-epochs", "huge-epochs", "zero-batch",
        "epochs-not-int", "unknown-dataset", "path-escape", "unknown-arch", "lr-low-above-high",
        "negative-lr", "too-many-trials",
    ],
)
def test_invalid_spec_is_422_naming_the_field_and_reason(
    api: TestClient, spec: dict[str, Any], field: str, reason: str
) -> None:
    body = assert_error(api.post("/v1/studies", json=spec), 422, "invalid_request")

    matching = [e for e in body["errors"] if e["field"] == field]
    assert matching, f"no error names {field!r}: {body['errors']}"
    assert any(reason.lower() in e["reason"].lower() for e in matching), matching
    assert field in body["message"]
    assert api.get("/v1/studies").json()["count"] == 0  # nothing was queued


def test_malformed_json_is_rejected_with_a_message(api: TestClient) -> None:
    response = api.post(
        "/v1/studies",
        content=b'{"dataset": "digits",',
        headers={"content-type": "application/json"},
    )

    body = assert_error(response, 422, "invalid_request")
    assert "not valid JSON" in body["message"]


def test_a_body_that_is_not_an_object_is_rejected(api: TestClient) -> None:
    body = assert_error(api.post("/v1/studies", json=[1, 2]), 422, "invalid_request")
    assert body["errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/studies/999",
        "/v1/studies/999/trials",
        "/v1/studies/999/diagnosis",
        "/v1/studies/999/lr.png",
        "/v1/trials/999",
        "/v1/trials/999/diagnosis",
        "/v1/trials/999/curves.png",
    ],
)
def test_unknown_ids_are_404_naming_the_id(api: TestClient, path: str) -> None:
    body = assert_error(api.get(path), 404, "not_found")
    assert "999" in body["message"]


def test_cancel_of_unknown_study_is_404(api: TestClient) -> None:
    cancel = api.post("/v1/studies/999/cancel", headers={"content-type": "application/json"})
    assert_error(cancel, 404, "not_found")


def test_ids_out_of_range_are_422(api: TestClient) -> None:
    body = assert_error(api.get(f"/v1/studies/{2**40}"), 422, "invalid_request")
    assert body["errors"][0]["field"] == "study_id"
    assert body["errors"][0]["location"] == "path"


def test_unknown_v1_path_is_a_json_404_not_the_dashboard(api: TestClient) -> None:
    body = assert_error(api.get("/v1/nothing-here"), 404, "not_found")
    assert "/docs" in body["message"]


def test_list_is_paged_and_filters_by_status(api: TestClient) -> None:
    ids = [submit(api, tiny_spec(f"paged-{i}"))["id"] for i in range(3)]
    cancelled = api.post(f"/v1/studies/{ids[0]}/cancel", json={})
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    page = api.get("/v1/studies", params={"limit": 2}).json()
    assert page["count"] == 3
    assert [s["id"] for s in page["data"]] == [ids[2], ids[1]]  # newest first
    rest = api.get("/v1/studies", params={"limit": 2, "offset": 2}).json()
    assert [s["id"] for s in rest["data"]] == [ids[0]]

    queued = api.get("/v1/studies", params={"status": "queued"}).json()
    assert sorted(s["id"] for s in queued["data"]) == ids[1:]
    assert queued["count"] == 2
    only_cancelled = api.get("/v1/studies", params={"status": "cancelled"}).json()
    assert [s["id"] for s in only_cancelled["data"]] == [ids[0]]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"offset": -1}, "offset"), ({"status": "sleeping"}, "status")],
)
def test_bad_list_parameters_are_422(
    api: TestClient, params: dict[str, Any], field: str
) -> None:
    body = assert_error(api.get("/v1/studies", params=params), 422, "invalid_request")
    assert body["errors"][0]["field"] == field
    assert body["errors"][0]["location"] == "query"


def test_cancelled_study_keeps_its_trials_and_none_will_run(api: TestClient) -> None:
    study = submit(api, tiny_spec("to-cancel"))

    cancelled = api.post(f"/v1/studies/{study['id']}/cancel", json={}).json()

    assert cancelled["status"] == "cancelled"
    trials = api.get(f"/v1/studies/{study['id']}/trials").json()
    assert trials["count"] == 2
    assert {t["state"] for t in trials["data"]} <= STATES - {"waiting", "running"}


def test_trial_detail_of_a_queued_trial(api: TestClient) -> None:
    study = submit(api, tiny_spec("detail"))
    trial = api.get(f"/v1/studies/{study['id']}/trials").json()["data"][0]

    detail = api.get(f"/v1/trials/{trial['id']}")

    assert detail.status_code == 200
    body = detail.json()
    assert body.keys() >= TRIAL_KEYS
    assert body["state"] == "waiting"
    assert body["epochs_done"] == 0
    assert body["diagnosis"] is None
    assert body["error"] is None
    # No epoch yet: there is nothing to diagnose, and the API says so instead of guessing.
    assert_error(api.get(f"/v1/trials/{trial['id']}/diagnosis"), 409, "conflict")


def test_diagnose_labels_any_curves(api: TestClient) -> None:
    healthy = api.post("/v1/diagnose", json=healthy_curves())
    diverged = api.post("/v1/diagnose", json=diverged_curves())

    assert healthy.status_code == 200, healthy.text
    assert diverged.status_code == 200, diverged.text
    assert diverged.json()["label"] == "diverged"
    body = healthy.json()
    assert body["label"] in {"healthy", "undertrained"}
    assert body["summary"]
    assert {"label", "confidence", "evidence", "findings", "recommendations"} <= body.keys()


@pytest.mark.parametrize(
    ("curves", "field"),
    [
        ({"train_loss": [1.0], "val_acc": [57.0]}, "val_acc"),
        ({"train_loss": "falling"}, "train_loss"),
    ],
    ids=["percent-not-fraction", "not-a-list"],
)
def test_diagnose_rejects_bad_curves_naming_the_field(
    api: TestClient, curves: dict[str, Any], field: str
) -> None:
    body = assert_error(api.post("/v1/diagnose", json=curves), 422, "invalid_request")
    assert any(e["field"] == field for e in body["errors"]), body


def test_healthz_is_ok_and_readyz_says_no_worker_was_seen(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}

    ready = api.get("/readyz")

    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False
    assert body["database"] is True
    assert "worker" in body["reason"]


def test_an_unreachable_database_is_503_not_500(tmp_path: Any) -> None:
    # Port 1 on loopback: nothing listens there, so every connection is refused at once.
    settings = Settings(
        home=tmp_path, database_url="postgresql+psycopg://sweepdoc:secret@127.0.0.1:1/sweepdoc"
    )
    with TestClient(create_app(settings)) as api:
        ready = api.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["database"] is False
        assert "database" in ready.json()["reason"]

        body = assert_error(api.get("/v1/studies"), 503, "database_unavailable")
        assert "secret" not in str(body)
        assert api.get("/healthz").status_code == 200


def test_a_bug_is_a_clean_json_500_without_traceback(settings: Settings) -> None:
    app = create_app(settings)

    def broken() -> dict[str, str]:
        raise RuntimeError("a genuine bug with internal detail")

    # A real route that fails; placed first so it wins over the catch-all routes.
    app.router.routes.insert(0, APIRoute("/v1/broken", broken, methods=["GET"]))
    with TestClient(app, raise_server_exceptions=False) as api:
        body = assert_error(api.get("/v1/broken"), 500, "internal_error")
    assert "internal detail" not in body["message"]


def test_openapi_documents_every_route_with_a_response_model(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    schema = api.get("/openapi.json").json()

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            ok = next(code for code in operation["responses"] if code.startswith("2"))
            if ok == "204":  # DELETE: no content, by definition
                continue
            content = operation["responses"][ok]["content"]
            # JSON, a PNG plot, or a file download (a trial's checkpoint).
            served = {"application/json", "image/png", "application/octet-stream"}
            assert content.keys() & served, (method, path)
            if "application/json" in content:
                assert content["application/json"]["schema"], (method, path)
    expected = {
        "/v1/studies", "/v1/studies/{study_id}", "/v1/studies/{study_id}/cancel",
        "/v1/studies/{study_id}/trials", "/v1/studies/{study_id}/diagnosis",
        "/v1/studies/{study_id}/lr.png", "/v1/trials/{trial_id}",
        "/v1/trials/{trial_id}/diagnosis", "/v1/trials/{trial_id}/curves.png",
        "/v1/trials/{trial_id}/checkpoint",
        "/v1/diagnose", "/healthz", "/readyz",
    }
    assert expected <= schema["paths"].keys()


def test_the_dashboard_is_served_on_the_same_app(api: TestClient) -> None:
    study = submit(api, tiny_spec("on-dashboard"))

    page = api.get("/dashboard")
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert api.get("/static/bundle.js").status_code == 200
    listed = api.get("/api/studies").json()["study_summaries"]
    assert study["optuna_study_name"] in {s["study_name"] for s in listed}
    assert api.get("/", follow_redirects=False).headers["location"].endswith("/dashboard")


def test_an_oversized_body_is_413_naming_the_limit(api: TestClient, settings: Settings) -> None:
    huge = {"dataset": "digits", "name": "x" * (settings.max_body_bytes + 1)}

    body = assert_error(api.post("/v1/studies", json=huge), 413, "payload_too_large")

    assert str(settings.max_body_bytes) in body["message"]
    assert api.get("/v1/studies").json()["count"] == 0


def test_an_oversized_chunked_body_is_413(api: TestClient, settings: Settings) -> None:
    def chunks() -> Any:
        for _ in range(settings.max_body_bytes // 1024 + 2):
            yield b" " * 1024

    response = api.post(
        "/v1/diagnose", content=chunks(), headers={"content-type": "application/json"}
    )

    assert_error(response, 413, "payload_too_large")


def test_a_study_before_its_first_epoch_still_answers_every_read(api: TestClient) -> None:
    study = submit(api, {"dataset": "digits", "search": {"sampler": "random", "n_trials": 3}})
    trials = api.get(f"/v1/studies/{study['id']}/trials").json()["data"]

    # Random trials get their learning rate when a worker starts them.
    assert [t["params"] for t in trials] == [{}, {}, {}]
    summary = api.get(f"/v1/studies/{study['id']}/diagnosis")
    assert summary.status_code == 200
    assert summary.json()["trials"] == 0
    assert "wait" in summary.json()["next_step"].lower()
    for path in (f"/v1/studies/{study['id']}/lr.png", f"/v1/trials/{trials[0]['id']}/curves.png"):
        image = api.get(path)
        assert image.status_code == 200
        assert image.content.startswith(b"\x89PNG")


@pytest.mark.parametrize("study", list(BEST_TRIAL_STUDIES), ids=list(BEST_TRIAL_STUDIES))
def test_the_study_and_its_summary_name_the_same_best_trial(
    api: TestClient, settings: Settings, study: str
) -> None:
    objective, outcomes, expected = BEST_TRIAL_STUDIES[study]
    submitted = submit(api, tiny_spec(grid=tuple(BEST_TRIAL_GRID), objective=objective))
    database = Database(settings.resolved_database_url)
    try:
        run_outcomes(database, submitted["id"], outcomes)
    finally:
        database.dispose()

    best = api.get(submitted["url"]).json()["best_trial"]
    summary = api.get(f"{submitted['url']}/diagnosis").json()

    assert (best and best["number"]) == summary["best_trial"] == expected


def test_the_follow_up_study_stays_within_this_servers_limits(tmp_path: Any) -> None:
    settings = Settings(home=tmp_path / "home", database_url=None, api_token=None, max_epochs=5)
    improving = Outcome(TrialState.COMPLETE, (0.3, 0.6, 0.75, 0.8), (1.5, 1.0, 0.8, 0.7))
    with TestClient(create_app(settings)) as api:
        study = submit(api, tiny_spec(grid=(0.1, 0.01), epochs=4))
        database = Database(settings.resolved_database_url)
        try:
            run_outcomes(database, study["id"], [improving])
        finally:
            database.dispose()

        summary = api.get(f"{study['url']}/diagnosis").json()

        # The best run was still improving: twice its 4 epochs, cut to this server's 5.
        assert summary["best_label"] == "undertrained"
        assert summary["followup_spec"]["train"]["epochs"] == 5
        submit(api, summary["followup_spec"])  # accepted as is


@pytest.mark.parametrize(("method", "path", "allow"), METHODS_NOT_ALLOWED)
def test_a_method_the_path_does_not_take_is_405_with_allow(
    api: TestClient, method: str, path: str, allow: str
) -> None:
    response = api.request(method, path, headers={"content-type": "application/json"})

    body = assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == allow
    assert method in body["message"]


def test_delete_refuses_an_unfinished_study_then_removes_the_cancelled_one(
    api: TestClient,
) -> None:
    json_write = {"content-type": "application/json"}
    study = submit(api, tiny_spec("to-delete"))
    url = f"/v1/studies/{study['id']}"

    refused = assert_error(api.delete(url, headers=json_write), 409, "conflict")
    assert "cancel it first" in refused["message"]
    assert api.post(f"{url}/cancel", json={}).status_code == 200
    deleted = api.delete(url, headers=json_write)

    assert deleted.status_code == 204 and deleted.content == b""
    assert_error(api.get(url), 404, "not_found")
    assert_error(api.delete(url, headers=json_write), 404, "not_found")
    listed = api.get("/api/studies").json()["study_summaries"]
    assert study["optuna_study_name"] not in {s["study_name"] for s in listed}


def test_the_dashboard_takes_no_artifact_uploads(api: TestClient, settings: Settings) -> None:
    submit(api, tiny_spec("no-uploads"))
    study_id = api.get("/api/studies").json()["study_summaries"][0]["study_id"]
    before = sorted(p.name for p in settings.artifacts_dir.rglob("*"))

    upload = {"file": "data:text/plain;base64," + "QUFB" * 1000, "filename": "a.txt"}
    response = api.post(f"/api/artifacts/{study_id}", json=upload)

    body = assert_error(response, 403, "uploads_disabled")
    assert "turned off" in body["message"]
    assert sorted(p.name for p in settings.artifacts_dir.rglob("*")) == before
    assert api.get("/api/studies").status_code == 200  # the rest of the dashboard works


def test_a_study_whose_stored_spec_is_refused_today_still_has_a_summary(
    api: TestClient, settings: Settings
) -> None:
    study = submit(api, tiny_spec("old-spec"))
    old = {**study["spec"], "retired_field": True}
    database = Database(settings.resolved_database_url)
    try:
        with database.engine.begin() as conn:
            conn.execute(
                text("UPDATE sweepdoc_studies SET spec = :s WHERE id = :id"),
                {"s": json.dumps(old), "id": study["id"]},
            )
    finally:
        database.dispose()

    response = api.get(f"/v1/studies/{study['id']}/diagnosis")

    assert response.status_code == 200, response.text
    assert response.json()["followup_spec"] is None
    assert "retired_field" in response.json()["next_step"]


def test_writes_past_the_clients_rate_limit_are_429_with_retry_after(tmp_path: Any) -> None:
    """Issue 14: a submit-then-cancel loop grew the database without bound. Writes are
    limited per client; reads and /v1/diagnose (which stores nothing) are not counted."""
    settings = Settings(home=tmp_path, database_url=None, write_rate_limit="3/minute")
    with TestClient(create_app(settings)) as api:
        study = submit(api, tiny_spec("limited"))
        assert api.post(f"/v1/studies/{study['id']}/cancel", json={}).status_code == 200
        deleted = api.delete(study["url"], headers={"content-type": "application/json"})
        assert deleted.status_code == 204
        for _ in range(3):  # not writes: never refused
            assert api.get("/v1/studies").status_code == 200
            assert api.post("/v1/diagnose", json=healthy_curves()).status_code == 200

        refused = api.post("/v1/studies", json=tiny_spec("one-too-many"))

        body = assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        assert "SWEEPDOC_WRITE_RATE_LIMIT" in body["message"]
        assert api.get("/v1/studies").json()["count"] == 0


def test_an_external_runs_epochs_have_their_own_budget_apart_from_the_writes(
    tmp_path: Any,
) -> None:
    """A training loop posts an epoch at a time, faster than people write: its epochs are
    counted on their own limit and neither spend nor are stopped by the writes' budget."""
    settings = Settings(
        home=tmp_path,
        database_url=None,
        write_rate_limit="2/minute",
        run_epoch_rate_limit="4/minute",
    )
    with TestClient(create_app(settings)) as api:
        run = api.post("/v1/runs", json={"project": "loop", "name": "r1"})
        assert run.status_code == 201, run.text
        epochs = f"/v1/runs/{run.json()['id']}/epochs"
        for epoch in range(1, 5):
            sent = api.post(epochs, json={"epoch": epoch, "val_acc": 0.1 * epoch})
            assert sent.status_code == 200, sent.text
        refused = api.post(epochs, json={"epoch": 5, "val_acc": 0.5})
        body = assert_error(refused, 429, "rate_limited")
        assert "SWEEPDOC_RUN_EPOCH_RATE_LIMIT" in body["message"]
        # One write of the two left: the epochs did not spend it.
        assert api.post("/v1/runs", json={"project": "loop", "name": "r2"}).status_code == 201
