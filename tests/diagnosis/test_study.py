"""diagnose_study: labels by learning rate, the LR window, the best trial and the next study."""

from collections.abc import Callable
from typing import Any

import pytest

from studies.diagnosis import (
    Curves,
    Diagnosis,
    Label,
    TrialOutcome,
    diagnose_run,
    diagnose_study,
)
from studies.spec import StudySpec
from tests.diagnosis import factory

Maker = Callable[..., dict[str, Any]]


def _trial(number: int, lr: float, make: Maker, **kwargs: Any) -> TrialOutcome:
    data = make(**kwargs)
    diagnosis: Diagnosis = diagnose_run(Curves.model_validate(data))
    accs = data["val_acc"]
    return TrialOutcome(
        number=number,
        params={"lr": lr},
        state="complete",
        diagnosis=diagnosis,
        final_val_acc=accs[-1],
        best_val_acc=max(accs),
        final_val_loss=data["val_loss"][-1],
    )


def _grid_study(best: Maker) -> list[TrialOutcome]:
    """The seed's grid: 1e-1 diverges, 1e-2 is the *best* shape, lower LRs are too slow."""
    return [
        _trial(0, 1e-1, factory.collapsed),
        _trial(1, 1e-2, best),
        _trial(2, 1e-3, factory.underfitting),
        _trial(3, 1e-4, factory.undertrained),
        _trial(4, 1e-5, factory.undertrained, seed=1),
    ]


FULL_SPEC = StudySpec.model_validate({"name": "digits-lr", "dataset": "digits"}).model_dump(
    mode="json"
)


def test_summary_of_the_seeds_grid() -> None:
    summary = diagnose_study(_grid_study(factory.healthy), spec=FULL_SPEC)
    assert [(e.lr, e.labels) for e in summary.labels_by_lr] == [
        (1e-5, [Label.UNDERTRAINED]),
        (1e-4, [Label.UNDERTRAINED]),
        (1e-3, [Label.UNDERFITTING]),
        (1e-2, [Label.HEALTHY]),
        (1e-1, [Label.DIVERGED]),
    ]
    assert summary.best_trial == 1 and summary.best_lr == 1e-2
    assert summary.best_label is Label.HEALTHY
    assert summary.lr_window.high == 1e-2
    assert summary.lr_window.low == 1e-3
    assert summary.label_counts[Label.UNDERTRAINED] == 2
    grid = summary.followup_spec["search"]["grid"]
    assert min(grid) < 1e-2 < max(grid) <= 1e-2 * 3.17
    assert "refine" in summary.next_step


@pytest.mark.parametrize(
    ("best", "check"),
    [
        (factory.healthy, lambda s: len(s["search"]["grid"]) == 5),
        (factory.overfitting, lambda s: len(s["search"]["extra"]["weight_decay"]) == 3),
        (factory.underfitting, lambda s: s["model"]["width"] == 64),
        (factory.undertrained, lambda s: s["train"]["epochs"] == 20),
    ],
    ids=["healthy", "overfitting", "underfitting", "undertrained"],
)
def test_followup_spec_is_a_valid_study_spec(best: Maker, check: Callable[..., bool]) -> None:
    trials = [_trial(0, 1e-1, factory.collapsed), _trial(1, 1e-2, best)]
    summary = diagnose_study(trials, spec=FULL_SPEC)
    spec = summary.followup_spec
    assert check(spec), spec
    validated = StudySpec.model_validate(spec)  # the user can submit it as is
    assert validated.name == "digits-lr-next"
    assert validated.trial_count() >= 1


def test_every_lr_diverged_searches_far_lower() -> None:
    trials = [_trial(i, lr, factory.collapsed, seed=i) for i, lr in enumerate((1e-1, 1e-2))]
    summary = diagnose_study(trials, spec={"dataset": "imagefolder:my/cats"})
    assert summary.best_trial is None and summary.lr_window.high is None
    spec = StudySpec.model_validate(summary.followup_spec)
    assert max(spec.search.lr_grid()) <= 1e-3
    assert spec.name == "imagefolder-my-cats-next"


def test_no_diagnosis_yet() -> None:
    trials = [TrialOutcome(number=0, params={"lr": 0.1}, state="running")]
    summary = diagnose_study(trials, spec=FULL_SPEC)
    assert summary.trials == 0 and summary.best_trial is None
    StudySpec.model_validate(summary.followup_spec)


def test_val_loss_objective_picks_the_lowest_loss() -> None:
    trials = _grid_study(factory.healthy)
    summary = diagnose_study(trials, spec=FULL_SPEC | {"objective": "val_loss"})
    assert summary.best_trial == 1


def test_a_trial_without_a_learning_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="lr"):
        TrialOutcome(number=0, params={"width": 8}, state="complete")
