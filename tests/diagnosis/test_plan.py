"""The optional `plan` of the diagnoser's input (issue 11, v2): what the run planned.

A run cut at epoch 20 of 60 with a step decay at 30 is not finished: the forecast looks at the
planned end, and the evidence says what the plan still holds. The fall ahead is never a verdict
by itself (a rule that made it one alarmed on held-out healthy recipes): the forecast decides.
Without a plan the diagnoser behaves as before; the plan is validated at the boundary with
errors naming the field; the planned LR comes from the trainer's own schedule; and confidence
is calibrated per stage of the plan.
"""

import itertools
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from service.cli import app
from studies.diagnosis import Curves, Label, Plan, ScheduleKind, Stage, diagnose_run
from studies.diagnosis._calibration import CALIBRATION_FILE
from studies.diagnosis._plan import ahead_of, stage_of
from studies.spec import StudySpec
from trainer._config import OptimRecipe

STEP_AT_30: dict[str, Any] = {"epochs": 60, "schedule": "step", "step_size": 30}


def plateau_before_a_step(epochs: int = 20) -> dict[str, Any]:
    """Validation flat at ~0.92 from epoch ~8 at a constant LR, the training loss still
    falling: what a step-decay run looks like before its first step."""
    rng = random.Random(0)
    return {
        "train_loss": [0.3 * math.exp(-e / 12) + 0.02 for e in range(epochs)],
        "val_loss": [0.25 + 0.1 * math.exp(-e / 2) + rng.gauss(0, 0.004) for e in range(epochs)],
        "train_acc": [0.94 - 0.3 * math.exp(-e / 3) for e in range(epochs)],
        "val_acc": [0.92 - 0.3 * math.exp(-e / 2) + rng.gauss(0, 0.003) for e in range(epochs)],
        "num_classes": 10,
        "lr": [0.1] * epochs,
    }


def still_rising(epochs: int = 12) -> dict[str, Any]:
    """Validation accuracy still climbing steadily (about a point an epoch) at a constant LR."""
    rng = random.Random(1)
    return {
        "train_loss": [1.2 * math.exp(-e / 10) + 0.05 for e in range(epochs)],
        "val_loss": [1.2 * math.exp(-e / 10) + 0.08 + rng.gauss(0, 0.004) for e in range(epochs)],
        "train_acc": [0.95 - 0.5 * math.exp(-e / 10) for e in range(epochs)],
        "val_acc": [0.93 - 0.5 * math.exp(-e / 10) + rng.gauss(0, 0.002) for e in range(epochs)],
        "num_classes": 10,
        "lr": [0.1] * epochs,
    }


def test_a_plateau_before_a_scheduled_step_is_not_called_undertrained_by_the_plan_alone() -> None:
    run = plateau_before_a_step()
    without = diagnose_run(Curves.model_validate(run))
    assert without.label is Label.HEALTHY  # its own epochs look settled

    planned = diagnose_run(Curves.model_validate(run | {"plan": STEP_AT_30}))
    # The fall ahead alone is no evidence that THIS run gains from it: the forecast decides.
    assert planned.label is Label.HEALTHY
    # The forecast looks at the planned end, not at twice the epochs so far.
    assert planned.forecast is not None and planned.forecast.horizon_epochs == 60
    evidence = planned.evidence
    assert (evidence.stage, evidence.planned_epochs, evidence.planned_lr_fall) == (
        Stage.IN_PROGRESS,
        60,
        10.0,
    )
    assert without.evidence.stage is Stage.UNKNOWN and without.evidence.planned_epochs is None


def test_a_run_still_paying_names_the_fall_its_plan_holds() -> None:
    planned = diagnose_run(Curves.model_validate(still_rising() | {"plan": STEP_AT_30}))
    assert planned.label is Label.UNDERTRAINED
    assert "plan still lowers the learning rate 10× over its 48 remaining epochs (of 60)" in (
        planned.summary
    )
    assert planned.forecast is not None and planned.forecast.horizon_epochs == 60
    # Without a fall ahead the verdict stands, and no fall is named.
    constant = diagnose_run(Curves.model_validate(still_rising() | {"plan": {"epochs": 60}}))
    assert constant.label is Label.UNDERTRAINED
    assert "lowers the learning rate" not in constant.summary


def test_a_plan_without_a_fall_ahead_changes_nothing_but_the_horizon() -> None:
    run = plateau_before_a_step()
    constant = diagnose_run(Curves.model_validate(run | {"plan": {"epochs": 60}}))
    assert constant.label is Label.HEALTHY
    assert constant.forecast is not None and constant.forecast.horizon_epochs == 60
    # An explicit horizon still wins.
    curves = Curves.model_validate(run | {"plan": {"epochs": 60}})
    forecast = diagnose_run(curves, horizon_epochs=25).forecast
    assert forecast is not None and forecast.horizon_epochs == 25


def test_a_finished_plan_is_judged_as_a_whole_run() -> None:
    run = plateau_before_a_step()
    finished = Curves.model_validate(run | {"plan": {"epochs": 20, "schedule": "none"}})
    assert stage_of(finished.plan, finished.epochs) is Stage.FINISHED
    assert ahead_of(finished.plan, finished.epochs) is None
    assert diagnose_run(finished).label is Label.HEALTHY


def test_the_planned_lr_is_the_trainers_schedule() -> None:
    step = Plan.of_recipe(OptimRecipe(epochs=6, schedule="step", step_size=2, step_gamma=0.1))
    assert step.schedule is ScheduleKind.STEP
    assert step.planned_lr() == pytest.approx([1.0, 1.0, 0.1, 0.1, 0.01, 0.01])

    cosine = Plan.of_recipe(OptimRecipe(epochs=30, schedule="cosine", warmup_epochs=3))
    rates = cosine.planned_lr()
    assert rates is not None and len(rates) == 30
    assert rates[0] < rates[1] < rates[2] == pytest.approx(1.0)  # the warm-up ramp
    assert all(a >= b for a, b in itertools.pairwise(rates[2:]))  # then only down
    assert rates[-1] < 0.01  # annealed to ~0 at the last step

    assert Plan(epochs=40).planned_lr() is None  # only the epochs are known
    assert Plan(epochs=3, lr=[0.1, 0.1, 0.01]).planned_lr() == [0.1, 0.1, 0.01]


def test_a_study_specs_train_section_is_a_plan() -> None:
    spec = StudySpec.model_validate(
        {
            "name": "planned",
            "dataset": "digits",
            "train": {"epochs": 12, "schedule": "step", "step_size": 4},
        }
    )
    plan = Plan.of_recipe(spec.train)
    assert (plan.epochs, plan.schedule, plan.step_size) == (12, ScheduleKind.STEP, 4)


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        ({"epochs": 10, "lr": [0.1] * 10, "schedule": "none"}, "not both"),
        ({"epochs": 10, "lr": [0.1] * 9}, "lr: must hold one rate per planned epoch (10)"),
        ({"epochs": 10, "lr": [0.1] * 9 + [-0.1]}, "greater than or equal to 0"),
        ({"epochs": 10, "schedule": "cosine", "warmup_epochs": 10}, "warmup_epochs"),
        ({"epochs": 10, "schedule": "cosine", "step_size": 3}, "schedule=step only"),
        ({"epochs": 10, "warmup_epochs": 2}, "need a `schedule`"),
        ({"epochs": 10, "schedule": "linear"}, "'none', 'cosine' or 'step'"),
        ({"epochs": 0}, "greater than or equal to 1"),
        ({"epochs": "60"}, "valid integer"),
        ({"epochs": 10, "schedule": "cosine", "warmup_epochs": True}, "valid number"),
        ({"epochs": 10, "schedule": "step", "step_gamma": True}, "valid number"),
        ({"epochs": 60, "steps": 3}, "Extra inputs"),
        ({"epochs": 19}, "plan.epochs: 19 planned, fewer than the 20 epochs recorded"),
    ],
)
def test_a_bad_plan_is_refused_naming_the_field(plan: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Curves.model_validate(plateau_before_a_step() | {"plan": plan})
    error = caught.value.errors()[0]
    assert reason in error["msg"]
    assert error["loc"][:1] == ("plan",) or "plan" in error["msg"]


def test_confidence_is_calibrated_per_stage() -> None:
    stages = json.loads(CALIBRATION_FILE.read_text())["stages"]
    assert set(stages) == {stage.value for stage in Stage}
    # A finished run is right more often than a run without a plan with the same verdict:
    # the finished stage's map says so, and a finished healthy run is more confident.
    run = plateau_before_a_step()
    finished = diagnose_run(Curves.model_validate(run | {"plan": {"epochs": 20}}))
    unknown = diagnose_run(Curves.model_validate(run))
    assert finished.label is unknown.label is Label.HEALTHY
    assert finished.confidence > unknown.confidence


def _reached_the_plan(diagnosis: dict[str, Any]) -> bool:
    """The answer was judged with STEP_AT_30: in progress, looking at its planned end."""
    evidence, forecast = diagnosis["evidence"], diagnosis["forecast"]
    return (evidence["stage"], evidence["planned_epochs"], evidence["planned_lr_fall"]) == (
        "in_progress",
        60,
        10.0,
    ) and forecast["horizon_epochs"] == 60


def test_post_diagnose_accepts_a_plan_and_names_a_bad_one(api: TestClient) -> None:
    run = plateau_before_a_step()
    answer = api.post("/v1/diagnose", json=run | {"plan": STEP_AT_30})
    assert answer.status_code == 200, answer.text
    assert _reached_the_plan(answer.json())

    bad = api.post("/v1/diagnose", json=run | {"plan": {"epochs": 60, "schedule": "linear"}})
    assert bad.status_code == 422, bad.text
    (error,) = bad.json()["errors"]
    assert error["field"].startswith("plan")

    body = api.get("/openapi.json").json()["paths"]["/v1/diagnose"]["post"]["requestBody"]
    documented = json.dumps(body)  # the field and each of the plan's own fields, described
    assert "What the run planned" in documented
    assert "Planned total epochs" in documented and "step schedule: epochs per decay" in documented


def test_post_diagnose_takes_a_plan_with_a_log_upload(api: TestClient) -> None:
    run = plateau_before_a_step()
    rows = ["epoch,loss,val_loss,accuracy,val_accuracy"] + [
        f"{i},{run['train_loss'][i]},{run['val_loss'][i]},{run['train_acc'][i]},{run['val_acc'][i]}"
        for i in range(20)
    ]
    upload = {"format": "csv", "content": "\n".join(rows), "num_classes": 10}
    answer = api.post("/v1/diagnose", json=upload | {"plan": STEP_AT_30})
    assert answer.status_code == 200, answer.text
    assert _reached_the_plan(answer.json())

    short = api.post("/v1/diagnose", json=upload | {"plan": {"epochs": 5}})
    assert short.status_code == 422, short.text
    (error,) = short.json()["errors"]
    assert error["field"] == "plan"
    assert "fewer than the 20 epochs recorded" in error["reason"]


def test_the_cli_takes_a_plan(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps(plateau_before_a_step()))
    plain = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["label"] == "healthy"

    planned = CliRunner().invoke(
        app, ["diagnose", str(path), "--json", "--plan", json.dumps(STEP_AT_30)]
    )
    assert planned.exit_code == 0, planned.output
    assert _reached_the_plan(json.loads(planned.stdout))

    bad = CliRunner().invoke(app, ["diagnose", str(path), "--plan", '{"epochs": 60, "lr": [1]}'])
    assert bad.exit_code == 2
    assert "--plan: lr: must hold one rate per planned epoch (60), got 1" in bad.output
