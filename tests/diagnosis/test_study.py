"""diagnose_study: labels by learning rate, the LR window, the best trial and the next study."""

from collections.abc import Callable
from pathlib import Path

import pytest

from studies.diagnosis import (
    Curves,
    Diagnosis,
    Label,
    StudySummary,
    TrialOutcome,
    diagnose_run,
    diagnose_study,
)
from studies.spec import SpecLimits, StudySpec, check_submission, parse_spec
from tests.diagnosis import factory

# A real diagnosis of a real curve, relabelled per trial: the summary's logic is under test
# here, not the run diagnoser's (tests/diagnosis/test_rules.py covers which curve gets which
# label), so these tests hold whatever the diagnoser makes of a synthetic shape.
_DIAGNOSIS = diagnose_run(Curves.model_validate(factory.healthy(epochs=20)))

H, OF, UF, UT, DV = (
    Label.HEALTHY,
    Label.OVERFITTING,
    Label.UNDERFITTING,
    Label.UNDERTRAINED,
    Label.DIVERGED,
)


def _trial(
    number: int, lr: float, label: Label, value: float, *, best_epoch: int = 20
) -> TrialOutcome:
    """A trial as the store hands it over: a diverged run is stored pruned (not complete);
    *value* is the objective's best value over its epochs (the best validation accuracy)."""
    diagnosis: Diagnosis = _DIAGNOSIS.model_copy(update={"label": label, "best_epoch": best_epoch})
    complete = label is not Label.DIVERGED
    return TrialOutcome(
        number=number,
        params={"lr": lr},
        state="complete" if complete else "pruned",
        complete=complete,
        objective_value=value,
        diagnosis=diagnosis,
        best_val_acc=value,
    )


def _grid_study(best: Label) -> list[TrialOutcome]:
    """The seed's grid: 1e-1 diverges, 1e-2 is the best (with label *best*), lower LRs are
    too slow."""
    return [
        _trial(0, 1e-1, DV, 0.1),
        _trial(1, 1e-2, best, 0.95),
        _trial(2, 1e-3, UF, 0.80),
        _trial(3, 1e-4, UT, 0.60),
        _trial(4, 1e-5, UT, 0.30),
    ]


SPEC = parse_spec({"name": "digits-lr", "dataset": "digits"})


def _submittable(summary: StudySummary, limits: SpecLimits, data_root: Path) -> StudySpec:
    """The follow-up spec, checked the way POST /v1/studies checks a submission."""
    assert summary.followup_spec is not None, summary.next_step
    check_submission(summary.followup_spec, limits=limits, data_root=data_root)
    return summary.followup_spec


def test_summary_of_the_seeds_grid() -> None:
    summary = diagnose_study(_grid_study(H), spec=SPEC)
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
    assert summary.followup_spec is not None
    grid = summary.followup_spec.search.grid
    assert grid is not None
    assert min(grid) < 1e-2 < max(grid) <= 1e-2 * 3.17
    assert "refine" in summary.next_step


@pytest.mark.parametrize(
    ("best", "check"),
    [
        (H, lambda s: len(s.search.lr_grid()) == 5),
        (OF, lambda s: len(s.search.extra.weight_decay) == 3 and s.model.dropout > 0),
        (UF, lambda s: s.model.width == 64 and s.train.epochs == 20),
        (UT, lambda s: s.train.epochs == 20 and min(s.search.lr_grid()) == 1e-2),
        (Label.INCONCLUSIVE, lambda s: s.search.lr_grid() == [1e-2]),
    ],
    ids=["healthy", "overfitting", "underfitting", "undertrained", "inconclusive"],
)
def test_followup_spec_is_a_valid_study_spec(
    best: Label, check: Callable[[StudySpec], bool], tmp_path: Path
) -> None:
    trials = [_trial(0, 1e-1, DV, 0.1), _trial(1, 1e-2, best, 0.9)]
    summary = diagnose_study(trials, spec=SPEC)
    spec = _submittable(summary, SpecLimits(), tmp_path)  # the user can submit it as is
    assert check(spec), spec
    assert spec.name == "digits-lr-next"
    assert parse_spec(spec.model_dump(mode="json")) == spec  # and it survives JSON


def test_every_lr_diverged_searches_far_lower() -> None:
    trials = [_trial(i, lr, DV, 0.1) for i, lr in enumerate((1e-1, 1e-2))]
    summary = diagnose_study(trials, spec=parse_spec({"dataset": "imagefolder:my/cats"}))
    assert summary.best_trial is None and summary.lr_window.high is None
    spec = summary.followup_spec
    assert spec is not None
    assert max(spec.search.lr_grid()) <= 1e-3
    assert spec.name == "imagefolder-my-cats-next"
    assert spec.model.norm == "batch" and spec.train.grad_clip is not None


def test_no_diagnosis_yet() -> None:
    trials = [TrialOutcome(number=0, params={"lr": 0.1}, state="running", complete=False)]
    summary = diagnose_study(trials, spec=SPEC)
    assert summary.trials == 0 and summary.best_trial is None
    assert "wait" in summary.next_step
    assert summary.followup_spec is not None


def test_val_loss_objective_picks_the_lowest_loss() -> None:
    trials = [
        t.model_copy(update={"objective_value": loss})
        for t, loss in zip(_grid_study(H), (9.0, 0.2, 0.5, 0.9, 1.1), strict=True)
    ]
    spec = parse_spec({"dataset": "digits", "objective": "val_loss"})
    summary = diagnose_study(trials, spec=spec)
    assert summary.best_trial == 1 and summary.best_value == 0.2


def test_only_a_complete_trial_can_be_the_best_as_in_the_api() -> None:
    """A stopped or cancelled run with the highest accuracy is not the best (Optuna's rule,
    the one studies.results.best_trial applies for the API)."""
    trials = _grid_study(H)
    stopped = _trial(5, 3e-3, H, 0.999).model_copy(update={"complete": False, "state": "pruned"})
    summary = diagnose_study([*trials, stopped], spec=SPEC)
    assert summary.best_trial == 1


def test_a_trial_without_a_learning_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="lr"):
        TrialOutcome(number=0, params={"width": 8}, state="complete", complete=True)


# -- issue 11, item 8: the window stays around the best; the follow-up fits the server --


@pytest.mark.parametrize(
    ("trials", "best_trial", "window"),
    [
        pytest.param(
            # A dead 1e-6 run (flat, called underfitting) past undertrained 1e-5 … 1e-3 is not
            # part of the usable range: the window ends at the first LR that was too slow.
            [
                _trial(0, 1e-6, UF, 0.11),
                _trial(1, 1e-5, UT, 0.30),
                _trial(2, 1e-4, UT, 0.60),
                _trial(3, 1e-3, UT, 0.85),
                _trial(4, 1e-2, H, 0.95),
                _trial(5, 1e-1, DV, 0.10),
            ],
            4,
            (1e-2, 1e-2),
            id="a dead run far below does not stretch the window",
        ),
        pytest.param(
            [
                _trial(0, 1e-4, UT, 0.6),
                _trial(1, 1e-3, OF, 0.9),
                _trial(2, 3e-3, H, 0.95),
                _trial(3, 1e-2, UF, 0.8),
                _trial(4, 1e-1, DV, 0.1),
            ],
            2,
            (1e-3, 1e-2),
            id="the window grows over neighbouring usable rates",
        ),
    ],
)
def test_the_lr_window_is_the_unbroken_run_of_usable_rates_around_the_best(
    trials: list[TrialOutcome], best_trial: int, window: tuple[float, float]
) -> None:
    summary = diagnose_study(trials, spec=SPEC)
    assert summary.best_trial == best_trial
    assert (summary.lr_window.low, summary.lr_window.high) == window


def test_an_overfitting_followup_keeps_the_runs_length_and_its_warm_up(tmp_path: Path) -> None:
    """Regularizing moves the best epoch later, so the follow-up is not cut to where the
    unregularized run peaked (a run cut there ended undertrained in bench/closed_loop.py);
    the warm-up stays as it was."""
    spec = parse_spec({"dataset": "digits", "train": {"epochs": 40, "warmup_epochs": 10}})
    best = _trial(1, 1e-2, OF, 0.9, best_epoch=6)
    summary = diagnose_study([_trial(0, 1e-1, DV, 0.1), best], spec=spec)
    followup = _submittable(summary, SpecLimits(), tmp_path)
    assert followup.train.epochs == 40 and followup.train.warmup_epochs == 10
    assert followup.model.dropout > 0 and len(followup.search.extra.weight_decay) == 3


def test_an_undertrained_followup_stays_within_the_servers_max_epochs(tmp_path: Path) -> None:
    limits = SpecLimits(max_epochs=500)
    spec = parse_spec({"dataset": "digits", "train": {"epochs": 400}})
    trials = [_trial(0, 1e-1, DV, 0.1), _trial(1, 1e-2, UT, 0.7)]
    summary = diagnose_study(trials, spec=spec, limits=limits)
    followup = _submittable(summary, limits, tmp_path)
    assert followup.train.epochs == 500
    assert "500 epochs" in summary.next_step


def test_a_followup_grid_shrinks_to_the_servers_trial_limit(tmp_path: Path) -> None:
    limits = SpecLimits(max_trials=4)
    trials = [_trial(0, 1e-1, DV, 0.1), _trial(1, 1e-2, OF, 0.9)]
    summary = diagnose_study(trials, spec=SPEC, limits=limits)
    followup = _submittable(summary, limits, tmp_path)
    assert followup.trial_count() <= 4
    assert followup.search.extra.weight_decay is not None  # still regularizes


def test_a_followup_that_cannot_fit_says_why_instead(tmp_path: Path) -> None:
    """Four widths are already more trials than a 3-trial server runs: no spec, a reason."""
    spec = parse_spec({"dataset": "digits", "search": {"extra": {"width": [8, 16, 32, 64]}}})
    trials = [_trial(0, 1e-2, H, 0.9)]
    summary = diagnose_study(trials, spec=spec, limits=SpecLimits(max_trials=3))
    assert summary.followup_spec is None
    assert "does not fit this server's limits" in summary.next_step
    assert "search" in summary.next_step and "limit of 3" in summary.next_step


def test_an_underfitting_torchvision_model_is_not_widened_but_named(tmp_path: Path) -> None:
    """Width is a knob of sweepdoc's own architectures: for a torchvision (or plugin) model
    the follow-up keeps the model and says a bigger one is the user's to pick."""
    spec = parse_spec({"dataset": "digits", "model": {"arch": "torchvision:resnet18"}})
    summary = diagnose_study([_trial(0, 1e-1, DV, 0.1), _trial(1, 1e-2, UF, 0.6)], spec=spec)
    followup = _submittable(summary, SpecLimits(), tmp_path)
    assert followup.model == spec.model
    assert followup.train.epochs == 2 * spec.train.epochs
    assert "bigger model than torchvision:resnet18" in summary.next_step
