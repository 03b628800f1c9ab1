"""An LR range test study end to end: a real `sweepdoc serve` with one real worker process,
a real SQLite file; the curve and suggestion on the trial and the study, the plot served,
the Optuna trial told, and the 404s of lr_range.png (in-process app, no worker)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
from fastapi.testclient import TestClient

from tests.service.factory import tiny_spec
from tests.service.serve_process import ServeProcess, sqlite_server

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LR_LOW, LR_HIGH = 1e-5, 3.0


def range_spec(name: str) -> dict[str, Any]:
    spec = tiny_spec(name)
    spec["search"] = {
        "sampler": "range_test",
        "lr_low": LR_LOW,
        "lr_high": LR_HIGH,
        "range_steps": 60,
    }
    return spec


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with sqlite_server(tmp_path_factory.mktemp("serve-range"), workers=1) as process:
        yield process


@pytest.fixture(scope="module")
def finished(server: ServeProcess) -> dict[str, Any]:
    response = server.http.post("/v1/studies", json=range_spec("e2e-range"))
    assert response.status_code == 201, response.text
    assert response.json()["trial_count"] == 1
    return server.wait_for_study(response.json()["id"])


def test_the_range_test_runs_as_one_trial_and_stores_its_curve(
    server: ServeProcess, finished: dict[str, Any]
) -> None:
    assert finished["status"] == "completed", server.log()
    (trial,) = server.get(f"/v1/studies/{finished['id']}/trials")["data"]
    assert trial["state"] == "complete"
    assert trial["label"] is None  # a range test is no training run: nothing to label
    assert trial["params"] == {"lr": LR_LOW}  # where the ramp starts
    detail = server.get(f"/v1/trials/{trial['id']}")
    lr_range = detail["lr_range"]
    assert lr_range["steps"] == len(lr_range["lrs"]) == len(lr_range["smoothed"]) > 10
    assert lr_range["lrs"][0] == pytest.approx(LR_LOW)
    assert lr_range["lrs"] == sorted(lr_range["lrs"])
    assert LR_LOW <= lr_range["suggestion"] <= LR_HIGH
    assert lr_range["rule"] in ("steepest", "minimum/10") and lr_range["reason"]
    # The study detail carries it too (what the next round reads); no best trial: a range
    # test measures no validation objective.
    study = server.get(f"/v1/studies/{finished['id']}")
    assert study["lr_range"]["suggestion"] == lr_range["suggestion"]
    assert study["best_trial"] is None
    # Nothing diagnoses it as a training run.
    response = server.http.get(f"/v1/trials/{trial['id']}/diagnosis")
    assert response.status_code == 409 and "LR range test" in response.json()["message"]
    assert server.http.get(f"/v1/studies/{finished['id']}/diagnosis").status_code == 200


def test_lr_range_png_is_served(server: ServeProcess, finished: dict[str, Any]) -> None:
    response = server.http.get(f"/v1/studies/{finished['id']}/lr_range.png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content.startswith(PNG_MAGIC) and len(response.content) > 10_000


def test_optuna_trial_is_complete_with_the_suggestion(
    server: ServeProcess, finished: dict[str, Any]
) -> None:
    storage = optuna.storages.RDBStorage(server.database_url)
    try:
        study = optuna.load_study(study_name=finished["optuna_study_name"], storage=storage)
        (trial,) = study.get_trials()
    finally:
        storage.engine.dispose()
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.value is not None and 0 < trial.value < 5
    assert trial.user_attrs["suggested_lr"] == finished["lr_range"]["suggestion"]
    assert "range test" in trial.user_attrs["objective"]
    # The plot is the trial's dashboard artifact.
    artifacts = [k for k in trial.system_attrs if k.startswith("artifacts:")]
    assert len(artifacts) == 1
    (artifact_file,) = [
        p for p in Path(server.home, "artifacts").iterdir() if p.is_file() and p.stat().st_size
    ]
    assert artifact_file.read_bytes().startswith(PNG_MAGIC)


def test_lr_range_png_404_says_why(api: TestClient) -> None:
    grid = api.post("/v1/studies", json=tiny_spec("not-a-range-test"))
    assert grid.status_code == 201, grid.text
    response = api.get(f"/v1/studies/{grid.json()['id']}/lr_range.png")
    assert response.status_code == 404
    assert "not an LR range test" in response.json()["message"]
    waiting = api.post("/v1/studies", json=range_spec("range-not-run"))
    assert waiting.status_code == 201, waiting.text
    assert waiting.json()["lr_range"] is None
    response = api.get(f"/v1/studies/{waiting.json()['id']}/lr_range.png")
    assert response.status_code == 404
    assert "has not run yet" in response.json()["message"]
    assert api.get("/v1/studies/999/lr_range.png").status_code == 404
