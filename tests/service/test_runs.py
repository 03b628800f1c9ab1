"""External runs over HTTP against a real `serve`: a loop streams epochs, the live check
answers, the run ends with a trial's diagnosis, and the project's Optuna study shows it."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState as OptunaState

from service.client import NotFound, SweepdocClient
from studies.diagnosis import Curves, Diagnosis, Label, diagnose_run
from tests.service.runs_serve import api_server
from tests.service.serve_process import ServeProcess

JSON = {"content-type": "application/json"}
_names = (f"p{i}" for i in itertools.count())

# A healthy-looking run: both losses fall, both accuracies rise (10 classes).
HEALTHY = [
    {
        "train_loss": 2.0 - 0.3 * i,
        "val_loss": 2.05 - 0.28 * i,
        "train_acc": 0.30 + 0.1 * i,
        "val_acc": 0.28 + 0.1 * i,
        "lr": 0.1,
    }
    for i in range(5)
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with api_server(tmp_path_factory.mktemp("runs")) as process:
        yield process


def new_run(server: ServeProcess, **body: Any) -> dict[str, Any]:
    body = {"project": next(_names), "name": "run", "num_classes": 10, **body}
    response = server.http.post("/v1/runs", json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"].endswith(f"/v1/runs/{response.json()['id']}")
    return dict(response.json())


def post_epoch(server: ServeProcess, run_id: int, epoch: int, **values: Any) -> Any:
    return server.http.post(f"/v1/runs/{run_id}/epochs", json={"epoch": epoch, **values})


def log(server: ServeProcess, run_id: int, epochs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    verdicts = []
    for epoch, values in enumerate(epochs, start=1):
        response = post_epoch(server, run_id, epoch, **values)
        assert response.status_code == 200, response.text
        verdicts.append(response.json())
    return verdicts


def finish(server: ServeProcess, run_id: int) -> Any:
    return server.http.post(f"/v1/runs/{run_id}/finish", headers=JSON)


def test_a_run_streams_its_epochs_and_ends_with_the_diagnosis_a_trial_gets(
    server: ServeProcess,
) -> None:
    run = new_run(server, params={"lr": 0.1, "optimizer": "sgd"})
    assert run["state"] == "running" and run["optuna_study_name"] == f"runs:{run['project']}"

    verdicts = log(server, run["id"], HEALTHY)
    assert [v["action"] for v in verdicts] == ["continue"] * len(HEALTHY)
    assert [v["epoch"] for v in verdicts] == [1, 2, 3, 4, 5]
    # Before the end: a provisional diagnosis of the epochs so far.
    assert Diagnosis.model_validate(server.get(f"/v1/runs/{run['id']}/diagnosis"))

    response = finish(server, run["id"])
    assert response.status_code == 200, response.text
    ended = response.json()
    assert ended["state"] == "complete" and ended["epochs_done"] == 5
    assert ended["best_val_acc"] == pytest.approx(0.68)

    # The diagnoser's verdict on these curves, held to the project's best run (this one), as
    # a trial is held to its study's best: the same function, the same shape, the same answer.
    curves = {key: [e[key] for e in HEALTHY] for key in HEALTHY[0]} | {"num_classes": 10}
    expected = diagnose_run(Curves.model_validate(curves), study_best_val_acc=0.68)
    served = Diagnosis.model_validate(server.get(f"/v1/runs/{run['id']}/diagnosis"))
    assert served == expected
    assert ended["label"] == expected.label

    detail = server.get(f"/v1/runs/{run['id']}")
    assert detail["curves"] == curves and detail["metrics"] == list(HEALTHY[0])
    assert Diagnosis.model_validate(detail["diagnosis"]) == expected
    # Finishing again changes nothing.
    assert finish(server, run["id"]).json() == ended


def test_a_nonfinite_loss_is_told_to_stop_and_the_run_ends_diverged(server: ServeProcess) -> None:
    run = new_run(server)
    log(server, run["id"], HEALTHY[:2])
    broken = {**HEALTHY[2], "train_loss": None, "val_loss": None}  # NaN/inf travel as null

    response = post_epoch(server, run["id"], 3, **broken)

    assert response.status_code == 200, response.text
    verdict = response.json()
    assert verdict["action"] == "stop" and verdict["state"] == "stopped"
    assert "live divergence check at epoch 3" in verdict["reason"]
    assert "non-finite" in verdict["reason"]
    assert verdict["diagnosis"]["label"] == Label.DIVERGED
    stopped = server.get(f"/v1/runs/{run['id']}")
    assert stopped["state"] == "stopped" and stopped["label"] == "diverged"
    assert stopped["curves"]["train_loss"][2] is None
    # The run has ended: another epoch is a conflict, finishing returns it as it is.
    later = post_epoch(server, run["id"], 4, **HEALTHY[3])
    assert later.status_code == 409 and "stopped" in later.json()["message"]
    assert finish(server, run["id"]).json()["state"] == "stopped"


def test_a_resent_epoch_gets_the_same_answer_and_is_stored_once(server: ServeProcess) -> None:
    run = new_run(server)
    first = post_epoch(server, run["id"], 1, **HEALTHY[0]).json()
    again = post_epoch(server, run["id"], 1, **HEALTHY[0])
    assert again.status_code == 200 and again.json() == first
    stop = post_epoch(server, run["id"], 2, **{**HEALTHY[1], "train_loss": None}).json()
    assert stop["action"] == "stop"
    # The answer to a resend of the stopping epoch is still "stop", though the run has ended.
    assert post_epoch(server, run["id"], 2, **{**HEALTHY[1], "train_loss": None}).json() == stop
    detail = server.get(f"/v1/runs/{run['id']}")
    assert detail["epochs_done"] == 2 and len(detail["curves"]["val_acc"]) == 2


def test_a_resent_epoch_with_other_values_is_a_conflict(server: ServeProcess) -> None:
    run = new_run(server)
    log(server, run["id"], HEALTHY[:2])
    response = post_epoch(server, run["id"], 2, **{**HEALTHY[1], "val_loss": 9.0})
    assert response.status_code == 409
    assert "val_loss" in response.json()["message"]
    assert server.get(f"/v1/runs/{run['id']}")["curves"]["val_loss"][1] == HEALTHY[1]["val_loss"]


@pytest.mark.parametrize(
    ("epoch", "values", "field"),
    [
        (3, HEALTHY[0], "epoch"),  # a gap: the run has one epoch
        (0, HEALTHY[0], "epoch"),
        (2, {k: v for k, v in HEALTHY[1].items() if k != "train_acc"}, "train_acc"),
        (2, {**HEALTHY[1], "val_loss": "NaN"}, "val_loss"),  # null is how NaN is sent
        (2, {**HEALTHY[1], "val_acc": 68.0}, "val_acc"),  # a percentage, not a fraction
        (2, {**HEALTHY[1], "lr": -1.0}, "lr"),
        (2, {**HEALTHY[1], "val_f1": 0.5}, "val_f1"),
        (2, {}, "(body)"),
    ],
    ids=[
        "gap",
        "zero",
        "missing-metric",
        "nan-string",
        "percent",
        "negative-lr",
        "unknown",
        "no-metric",
    ],
)
def test_an_epoch_that_does_not_fit_is_422_naming_the_field(
    server: ServeProcess, epoch: int, values: dict[str, Any], field: str
) -> None:
    run = new_run(server)
    log(server, run["id"], HEALTHY[:1])
    response = post_epoch(server, run["id"], epoch, **values)
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert server.get(f"/v1/runs/{run['id']}")["epochs_done"] == 1  # nothing stored


def test_the_first_epoch_must_log_the_objective(server: ServeProcess) -> None:
    run = new_run(server, objective="val_loss")
    response = post_epoch(server, run["id"], 1, train_loss=1.0, val_acc=0.5)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "val_loss"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"project": "has space", "name": "r"}, "project"),
        ({"project": "p", "name": ""}, "name"),
        ({"project": "p", "name": "r", "params": {"nested": {"a": 1}}}, "params.nested"),
        ({"project": "p", "name": "r", "params": {"lr": float("inf")}}, "params.lr"),
        ({"project": "p", "name": "r", "num_classes": 1}, "num_classes"),
        ({"project": "p", "name": "r", "objective": "accuracy"}, "objective"),
        ({"project": "p", "name": "r", "colour": "red"}, "colour"),
        ({"project": "p", "name": "r", "params": {"label": "mine"}}, "params.label"),
        ({"project": "p", "name": "r", "params": {"run": 3}}, "params.run"),
        ({"project": "p", "name": "r", "params": {"sweepdoc_x": 1}}, "params.sweepdoc_x"),
    ],
    ids=[
        "project", "name", "nested-param", "inf-param", "num-classes", "objective", "unknown",
        "reserved-label", "reserved-run", "reserved-prefix",
    ],
)
def test_a_bad_run_is_422_naming_the_field(
    server: ServeProcess, body: dict[str, Any], field: str
) -> None:
    before = server.get("/v1/runs")["count"]
    response = server.http.post("/v1/runs", content=_json(body), headers=JSON)
    assert response.status_code == 422, response.text
    assert field in [e["field"].split(".[")[0] for e in response.json()["errors"]]
    assert server.get("/v1/runs")["count"] == before


def _json(body: dict[str, Any]) -> str:
    import json

    return json.dumps(body)  # Python's json writes inf as Infinity, which the server reads


def test_a_project_keeps_the_objective_of_its_first_run(server: ServeProcess) -> None:
    run = new_run(server)
    response = server.http.post(
        "/v1/runs", json={"project": run["project"], "name": "b", "objective": "val_loss"}
    )
    assert response.status_code == 409
    assert "objective val_acc" in response.json()["message"]


def test_unknown_runs_and_empty_finishes(server: ServeProcess) -> None:
    assert server.http.get("/v1/runs/999999").status_code == 404
    assert post_epoch(server, 999999, 1, val_acc=0.5).status_code == 404
    run = new_run(server)
    assert finish(server, run["id"]).status_code == 409
    assert server.http.get(f"/v1/runs/{run['id']}/diagnosis").status_code == 409


def test_a_project_is_an_optuna_study_with_one_trial_per_run(server: ServeProcess) -> None:
    first = new_run(server, params={"lr": 0.1, "optimizer": "sgd"})
    project = first["project"]
    second = new_run(server, project=project, name="big lr", params={"lr": 10.0})
    log(server, first["id"], HEALTHY)
    label = finish(server, first["id"]).json()["label"]
    log(server, second["id"], [HEALTHY[0], {**HEALTHY[1], "train_loss": None}])

    listed = server.get("/v1/runs", params={"project": project})
    assert listed["count"] == 2 and [r["name"] for r in listed["data"]] == ["big lr", "run"]

    study = optuna.load_study(study_name=f"runs:{project}", storage=server.database_url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    done, diverged = sorted(study.trials, key=lambda t: t.number)
    assert done.state == OptunaState.COMPLETE and done.value == pytest.approx(0.68)
    assert done.params == {"lr": 0.1}
    assert done.user_attrs["optimizer"] == "sgd" and done.user_attrs["run"] == "run"
    assert done.user_attrs["label"] == label and label is not None
    assert done.user_attrs["sweepdoc_run_id"] == first["id"]
    assert done.intermediate_values == {
        i: pytest.approx(e["val_acc"]) for i, e in enumerate(HEALTHY, start=1)
    }
    assert diverged.state == OptunaState.PRUNED
    assert diverged.user_attrs["label"] == "diverged"
    assert math.isclose(diverged.params["lr"], 10.0)
    # The dashboard lists the project's study; sweepdoc's own studies do not.
    dashboard = server.get("/api/studies")["study_summaries"]
    assert f"runs:{project}" in {s["study_name"] for s in dashboard}
    assert all(
        s["optuna_study_name"] != f"runs:{project}" for s in server.get("/v1/studies")["data"]
    )


def test_runs_are_listed_newest_first_with_paging(server: ServeProcess) -> None:
    project = next(_names)
    ids = [new_run(server, project=project, name=f"r{i}")["id"] for i in range(3)]
    page = server.get("/v1/runs", params={"project": project, "offset": 1, "limit": 1})
    assert page["count"] == 3 and [r["id"] for r in page["data"]] == [ids[1]]


def test_deleting_a_run_removes_it_its_epochs_and_its_optuna_trial(server: ServeProcess) -> None:
    """The project's later trials move down one number, as Optuna numbers without gaps (a
    new run after a deletion must not get an existing number); a second DELETE is 404."""
    first = new_run(server, params={"lr": 0.1})
    project = first["project"]
    doomed = new_run(server, project=project, name="doomed", params={"lr": 1.0})
    last = new_run(server, project=project, name="last", params={"lr": 0.01})
    for run in (first, doomed, last):
        log(server, run["id"], HEALTHY[:2])
    assert finish(server, doomed["id"]).status_code == 200  # a note on its trial, too
    before = optuna.load_study(study_name=f"runs:{project}", storage=server.database_url)
    (doomed_trial,) = [t for t in before.trials if t.user_attrs["run"] == "doomed"]
    note = f"dashboard:{doomed_trial._trial_id}:"  # optuna_dashboard's note keys
    assert any(key.startswith(note) for key in study_system_attrs(before))

    with SweepdocClient(server.url) as client:
        client.delete_run(doomed["id"])
        with pytest.raises(NotFound):
            client.delete_run(doomed["id"])
        assert server.http.get(f"/v1/runs/{doomed['id']}").status_code == 404
        assert post_epoch(server, doomed["id"], 3, **HEALTHY[2]).status_code == 404
        assert client.run(last["id"]).optuna_trial_number == 1  # was 2
        after = new_run(server, project=project, name="after")
        assert after["optuna_trial_number"] == 2

    study = optuna.load_study(study_name=f"runs:{project}", storage=server.database_url)
    assert [(t.number, t.user_attrs["run"]) for t in study.trials] == [
        (0, "run"), (1, "last"), (2, "after")
    ]
    assert all(t.user_attrs.get("sweepdoc_run_id") != doomed["id"] for t in study.trials)
    assert not [key for key in study_system_attrs(study) if key.startswith(note)]


def study_system_attrs(study: optuna.Study) -> dict[str, Any]:
    """Where optuna-dashboard keeps trial notes (Optuna 5 has no public reader)."""
    return dict(study._storage.get_study_system_attrs(study._study_id))
