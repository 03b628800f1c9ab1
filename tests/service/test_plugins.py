"""Plugins through the API: `GET /v1/plugins`, the 422s that name the field, and a study on a
plugin model and a plugin dataset trained end to end by a real `serve` and its worker.

The plugins are those of the real package tests/plugins/sweepdoc_example_plugin, installed
into the test environment (`make install-dev`): `tiny-cnn` (model, option `hidden`),
`blobs` (dataset, options `seed`, `per_class`, ...) and `broken` (a model entry point
whose module does not exist).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.settings import Settings
from tests.service.serve_process import ServeProcess, sqlite_server

TOKEN = "plugin-test-token-0123456789"
PLUGIN_SPEC: dict[str, Any] = {
    "name": "plugin-grid",
    "dataset": "plugin:blobs",
    "data": {"dataset_options": {"per_class": 30, "val_per_class": 10, "seed": 3}},
    "model": {"arch": "plugin:tiny-cnn", "options": {"hidden": 12}},
    "train": {"epochs": 2, "batch_size": 16},
    "search": {"sampler": "grid", "grid": [0.1, 0.01]},
}


def _with(section: str, **values: Any) -> dict[str, Any]:
    """The plugin study with *values* changed in its *section*."""
    return {**PLUGIN_SPEC, section: {**PLUGIN_SPEC.get(section, {}), **values}}


def _refusal(api: TestClient, spec: dict[str, Any]) -> dict[str, str]:
    """The fields a 422 names, with their reasons; nothing was stored."""
    response = api.post("/v1/studies", json=spec)
    assert response.status_code == 422, response.text
    assert api.get("/v1/studies").json()["count"] == 0
    return {e["field"]: e["reason"] for e in response.json()["errors"]}


def test_plugins_lists_the_installed_plugins_with_their_options_schema(api: TestClient) -> None:
    body = api.get("/v1/plugins").json()
    models = {p["name"]: p for p in body["models"]}
    datasets = {p["name"]: p for p in body["datasets"]}
    tiny = models["tiny-cnn"]
    assert (tiny["use_as"], tiny["distribution"], tiny["version"], tiny["error"]) == (
        "plugin:tiny-cnn",
        "sweepdoc-example-plugin",
        "0.1.0",
        None,
    )
    hidden = tiny["options_schema"]["properties"]["hidden"]
    assert (hidden["default"], hidden["minimum"], hidden["maximum"]) == (16, 1, 512)
    assert set(datasets["blobs"]["options_schema"]["properties"]) >= {"seed", "per_class"}
    # A plugin that cannot be imported is listed, with the reason, not hidden.
    assert models["broken"]["options_schema"] is None
    assert "ModuleNotFoundError" in models["broken"]["error"]
    assert "resnet18" in body["torchvision_models"]
    assert "squeezenet1_0" not in body["torchvision_models"]  # its classifier is a convolution


def test_plugins_needs_the_token_as_other_reads_do(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", database_url=None, api_token=TOKEN)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/plugins").status_code == 401
        authorized = client.get("/v1/plugins", headers={"Authorization": f"Bearer {TOKEN}"})
        assert authorized.status_code == 200
        assert [p["name"] for p in authorized.json()["datasets"]] == ["blobs"]


def test_an_unknown_model_plugin_is_refused_listing_the_installed_ones(api: TestClient) -> None:
    reason = _refusal(api, _with("model", arch="plugin:tiny-rnn"))["model.arch"]
    assert "unknown model plugin 'tiny-rnn'" in reason
    assert "'tiny-cnn' (sweepdoc-example-plugin 0.1.0)" in reason


def test_an_unknown_dataset_plugin_is_refused_listing_the_installed_ones(api: TestClient) -> None:
    reason = _refusal(api, {**PLUGIN_SPEC, "dataset": "plugin:cats", "data": {}})["dataset"]
    assert "unknown dataset plugin 'cats'" in reason and "'blobs'" in reason


def test_a_plugin_that_cannot_be_imported_is_refused_by_name(api: TestClient) -> None:
    spec = {**PLUGIN_SPEC, "model": {"arch": "plugin:broken"}}
    reason = _refusal(api, spec)["model.arch"]
    assert "model plugin 'broken'" in reason
    assert "ModuleNotFoundError" in reason and "Traceback" not in reason


@pytest.mark.parametrize(
    ("section", "values", "field", "reason"),
    [
        ("model", {"options": {"hidden": 0}}, "model.options.hidden", "greater than or equal to 1"),
        ("model", {"options": {"hidden": "many"}}, "model.options.hidden", "valid integer"),
        ("model", {"options": {"depth": 3}}, "model.options.depth", "Extra inputs"),
        (
            "data",
            {"dataset_options": {"per_class": 2}},
            "data.dataset_options.per_class",
            "greater than or equal to 5",
        ),
    ],
    ids=["below-bound", "wrong-type", "unknown-option", "dataset-option"],
)
def test_a_bad_plugin_option_is_refused_naming_the_field(
    api: TestClient, section: str, values: dict[str, Any], field: str, reason: str
) -> None:
    fields = _refusal(api, _with(section, **values))
    assert field in fields, fields
    assert reason in fields[field]


def test_options_of_a_model_that_takes_none_are_refused(api: TestClient) -> None:
    spec = {"dataset": "digits", "model": {"arch": "simple", "options": {"hidden": 3}}}
    assert "plugin models only" in _refusal(api, spec)["model.options"]


def test_an_unknown_torchvision_model_is_refused_with_close_names(api: TestClient) -> None:
    spec = {"dataset": "digits", "model": {"arch": "torchvision:resnet81"}}
    reason = _refusal(api, spec)["model.arch"]
    assert "unknown torchvision classification model 'resnet81'" in reason
    assert "resnet18" in reason


def test_a_weights_file_outside_the_data_root_or_missing_is_refused(api: TestClient) -> None:
    spec = {"dataset": "digits", "model": {"arch": "torchvision:resnet18"}}
    outside = _refusal(api, {**spec, "model": {**spec["model"], "weights_file": "../w.pth"}})
    assert "relative to the data root" in outside["model.weights_file"]
    missing = _refusal(api, {**spec, "model": {**spec["model"], "weights_file": "w.pth"}})
    assert "no file 'w.pth'" in missing["model.weights_file"]


def test_the_stored_spec_holds_the_options_with_their_defaults(api: TestClient) -> None:
    response = api.post("/v1/studies", json=PLUGIN_SPEC)
    assert response.status_code == 201, response.text
    spec = response.json()["spec"]
    assert spec["model"]["options"] == {"hidden": 12, "channels": 8}
    assert spec["data"]["dataset_options"]["per_class"] == 30


# -- end to end: a real server and its worker ---------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with sqlite_server(tmp_path_factory.mktemp("serve-plugins"), workers=1) as process:
        yield process


def test_a_study_on_a_plugin_model_and_dataset_trains_end_to_end(server: ServeProcess) -> None:
    response = server.http.post("/v1/studies", json=PLUGIN_SPEC)
    assert response.status_code == 201, response.text
    study = server.wait_for_study(response.json()["id"])
    assert study["status"] == "completed", server.log()
    trials = server.get(f"/v1/studies/{study['id']}/trials")["data"]
    assert sorted(t["params"]["lr"] for t in trials) == [0.01, 0.1]
    for trial in trials:
        assert (trial["state"], trial["epochs_done"]) == ("complete", 2)
        assert trial["label"] is not None
        detail = server.get(f"/v1/trials/{trial['id']}")
        assert detail["error"] is None
        assert detail["curves"]["num_classes"] == 3  # the dataset plugin's 3 classes
        assert len(detail["curves"]["val_acc"]) == 2
        # Accuracies over the plugin's own val split of 30 images are multiples of 1/30.
        assert all(round(acc * 30, 6).is_integer() for acc in detail["curves"]["val_acc"])
