"""`POST /v1/diagnose` with CSV and TensorBoard uploads (JSON bodies): the diagnosis plus the
mapping, the plain curves object unchanged, and every bad upload a 422 naming the field."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.runlogs import logs


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == "invalid_request"
    assert "Traceback" not in response.text
    return body


def test_a_csv_upload_is_diagnosed_with_its_mapping(api: TestClient) -> None:
    response = api.post(
        "/v1/diagnose", json={"format": "csv", "content": logs.LIGHTNING_CSV, "num_classes": 10}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["label"] and body["evidence"]["epochs"] == 3
    assert body["evidence"]["num_classes"] == 10
    mapped = {m["curve"]: m["source"] for m in body["mapping"]["mapped"]}
    assert mapped == {
        "train_loss": "train_loss_epoch", "val_loss": "val_loss", "val_acc": "val_acc"
    }
    reasons = {i["source"]: i["reason"] for i in body["mapping"]["ignored"]}
    assert reasons["train_loss_step"] == "superseded"


def test_a_tensorboard_upload_with_a_map(api: TestClient, tmp_path: Path) -> None:
    path = logs.event_file(logs.torch_tutorial_run(tmp_path))
    payload = {
        "format": "tensorboard",
        "content_base64": base64.b64encode(path.read_bytes()).decode(),
        "map": {"val_loss": "Loss/val"},
    }
    response = api.post("/v1/diagnose", json=payload)

    assert response.status_code == 200, response.text
    mapped = {m["curve"]: m["chosen_by"] for m in response.json()["mapping"]["mapped"]}
    assert mapped == {"train_loss": "name", "val_loss": "map", "val_acc": "name"}


def test_a_plain_curves_object_still_works_without_a_mapping(api: TestClient) -> None:
    curves = {"train_loss": [2.0, 1.5, 1.2, 1.0], "val_loss": [2.1, 1.6, 1.3, 1.1]}
    response = api.post("/v1/diagnose", json=curves)
    assert response.status_code == 200, response.text
    assert response.json()["mapping"] is None
    assert _error(api.post("/v1/diagnose", json={"val_acc": [57.0]}))["errors"][0]["field"] == (
        "val_acc"
    )


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        ({"format": "csv", "content": "epoch,loss,val_accuracy\n0,1.0,57\n"}, "val_accuracy",
         "outside [0, 1] (give fractions, not percentages)"),
        ({"format": "csv", "content": "epoch,loss\n0,1\n", "map": {"val_loss": "x"}},
         "map.val_loss", "no column or tag 'x'"),
        ({"format": "csv", "content": "epoch,f1\n0,0.5\n"}, "content",
         "no column or tag became one of the curves"),
        ({"format": "tensorboard", "content_base64": "%%%"}, "content_base64", "not base64"),
        ({"format": "tensorboard", "content_base64": base64.b64encode(b"junk").decode()},
         "content_base64", "hold no scalar"),
        ({"format": "tensorboard", "content": "text"}, "content", "send it base64-encoded"),
        ({"format": "csv"}, "content", "give exactly one of content and content_base64"),
        ({"format": "xml", "content": "a"}, "format", "'csv' or 'tensorboard'"),
    ],
    ids=["percent", "map-unknown-column", "no-curve", "not-base64", "not-events",
         "binary-as-text", "no-content", "unknown-format"],
)
def test_bad_uploads_are_422_naming_the_field(
    api: TestClient, payload: dict[str, Any], field: str, reason: str
) -> None:
    body = _error(api.post("/v1/diagnose", json=payload))
    (error,) = body["errors"]
    assert error["field"] == field
    assert reason in error["reason"]
