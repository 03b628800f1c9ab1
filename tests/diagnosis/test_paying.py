"""What "more epochs pay" means (docs/diagnoser.md, "Forecast" and rule 5/8): gains counted
from the best so far, runs in progress judged by what their remaining epochs will show,
either validation metric paying, a forecast that never starts better than the run, the plan a
recorded LR decay implies, and an accuracy dip that the validation loss contradicts.
"""

import math
import random
from statistics import median
from typing import Any

import pytest

from studies.diagnosis import Curves, Label, _forecast, diagnose_run
from studies.diagnosis._forecast import Bounds, Direction, GainBy, forecast
from studies.diagnosis._implied import implied_plan
from studies.diagnosis._schedule import find_schedule
from studies.diagnosis._stats import running_median
from tests.diagnosis.factory import curves, decay


def _drifting(epochs: int, *, seed: int = 0) -> dict[str, Any]:
    """A constant-LR run whose accuracy settled near 0.985 while its noisy validation loss
    keeps drifting down (a power law): cut early, the rest of such a run shows a loss 20%
    lower than its best so far."""
    rng = random.Random(seed)
    return {
        "train_loss": [0.4 * (e + 1) ** -0.8 for e in range(epochs)],
        "val_loss": [0.5 * (e + 1) ** -0.6 * (1 + rng.gauss(0, 0.08)) for e in range(epochs)],
        "train_acc": [min(0.999, 1 - 0.3 * (e + 1) ** -1.2) for e in range(epochs)],
        "val_acc": [0.985 - 0.3 * math.exp(-e / 2) + rng.gauss(0, 0.002) for e in range(epochs)],
        "num_classes": 10,
        "lr": [0.05] * epochs,
    }


def test_gains_are_counted_from_the_best_the_run_has_shown() -> None:
    values = [0.60, 0.75, 0.84, 0.90, 0.86, 0.91, 0.88, 0.89]  # a lucky 0.91 is not the best
    f = forecast(values, first_epoch=1, horizon=16, direction=Direction.UP, bounds=Bounds(0, 1))
    assert f is not None
    assert f.best == max(running_median(values, 3)) == 0.90 < max(values)
    # a replicate's gain is its forecast minus that best, whatever the fitted last epoch says
    assert f.gains.shape == f.shown_gains.shape == f.eventual_gains.shape


def test_the_forecast_never_starts_better_than_the_run() -> None:
    # A fast drop to a noisy plateau at 0.07: a fit pulled by the drop would end below the
    # plateau and forecast a fall the run never shows.
    rng = random.Random(1)
    values = [2.3 * math.exp(-e / 3) + 0.07 + rng.gauss(0, 0.02) for e in range(1, 31)]
    f = forecast(values, first_epoch=1, horizon=60, direction=Direction.DOWN, bounds=Bounds(0.0))
    assert f is not None
    tail = values[-9:]
    assert f.now >= median(tail) - 0.5 * (max(tail) - min(tail))
    assert f.asymptote >= 0.9 * 0.07


@pytest.mark.parametrize("seed", range(3))
def test_the_noise_a_future_epoch_adds_has_the_runs_own_shape(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A 2-class net's validation loss on its floor near 0.005, spiking to 0.013-0.025 in
    # two epochs of five (wave 20's healthy digits 2 vs 7 at constant LR). Symmetric noise
    # about a mean the spikes pulled up would draw epochs far below the floor — below 0
    # even — and "show" a 20% lower loss than the best so far; the run's own residuals,
    # resampled, sit on its floor and spike up, as the rest of that run did.
    rng = random.Random(seed)
    values = [0.2, 0.02, 0.015] + [
        0.0045 + rng.uniform(0, 5e-4) + (rng.uniform(0.008, 0.02) if rng.random() < 0.4 else 0.0)
        for _ in range(17)
    ]

    def shown_fall_probability() -> float:
        f = forecast(values, first_epoch=1, horizon=58, direction=Direction.DOWN,
                     bounds=Bounds(0.0))
        assert f is not None
        return f.probability_of_gain(0.2 * f.best, by=GainBy.SHOWN)

    own_shape = shown_fall_probability()
    monkeypatch.setattr(_forecast, "MIN_SHAPE_RESIDUALS", len(values) + 1)  # Gaussian draws
    assert own_shape <= 0.5 < shown_fall_probability()


def test_a_run_in_progress_is_judged_by_what_its_remaining_epochs_show() -> None:
    run = _drifting(30)
    in_progress = diagnose_run(Curves.model_validate(run | {"plan": {"epochs": 200}}))
    assert in_progress.label is Label.UNDERTRAINED, in_progress.summary
    assert "validation loss" in in_progress.summary  # the metric that pays is named
    # The same epochs as a finished run: it is judged by the eventual gain of its mean curve
    # (this loss really keeps falling), read at the default horizon, twice its epochs.
    finished = diagnose_run(Curves.model_validate(run | {"plan": {"epochs": 30}}))
    assert finished.forecast is not None and finished.forecast.horizon_epochs == 60
    assert finished.evidence.stage == "finished"
    assert finished.label is Label.UNDERTRAINED, finished.summary


def test_a_settled_run_in_progress_is_healthy() -> None:
    settled = curves(
        30,
        lambda e: (
            0.3 * decay(e) + 0.02,
            0.3 * decay(e) + 0.05,
            0.995 - 0.3 * decay(e),
            0.985 - 0.3 * decay(e),
        ),
        noise=0.001,
        seed=2,
    )
    run = settled | {"plan": {"epochs": 60}}
    diagnosis = diagnose_run(Curves.model_validate(run))
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary


def _cosine(epochs: int, peak: float = 0.1) -> list[float]:
    return [peak * 0.5 * (1 + math.cos(math.pi * (e + 1) / epochs)) for e in range(epochs)]


@pytest.mark.parametrize("cut", [12, 20, 30])
def test_a_recorded_cosine_decay_implies_its_end(cut: int) -> None:
    lr = _cosine(40)[:cut]
    plan = implied_plan(list(lr), find_schedule(list(lr)))
    assert plan is not None and plan.epochs == 40
    assert plan.lr is not None and plan.lr[:cut] == lr and plan.lr[-1] <= 0.01 * max(lr)


def test_a_recorded_linear_decay_implies_its_end() -> None:
    lr = [0.1 * (1 - (e + 1) / 50) for e in range(25)]
    plan = implied_plan(list(lr), find_schedule(list(lr)))
    assert plan is not None and plan.epochs == 50


@pytest.mark.parametrize(
    "lr",
    [
        [0.1] * 20,  # constant: no end in sight
        [0.1] * 10 + [0.01] * 10,  # a step decay: the next step cannot be seen
        [0.1 * 0.9**e for e in range(20)],  # exponential: never ends
        _cosine(100)[:10],  # a cosine not yet visibly decaying: nothing to read yet
        _cosine(30)[:27],  # annealed: the schedule has run its course
    ],
    ids=["constant", "step", "exponential", "not-yet-visible", "annealed"],
)
def test_other_lr_curves_imply_no_end(lr: list[float]) -> None:
    assert implied_plan(list(lr), find_schedule(list(lr))) is None


def test_a_cut_of_a_cosine_run_without_a_plan_is_judged_to_its_implied_end() -> None:
    epochs, cut = 40, 20
    falling = curves(
        cut,
        lambda e: (
            1.5 * decay(e, 6) + 0.1,
            1.5 * decay(e, 6) + 0.15,
            0.97 - 0.6 * decay(e, 6),
            0.95 - 0.6 * decay(e, 6),
        ),
        noise=0.005,
        seed=3,
    )
    run = falling | {"lr": _cosine(epochs)[:cut]}
    diagnosis = diagnose_run(Curves.model_validate(run))
    assert diagnosis.evidence.implied_epochs is not None
    assert abs(diagnosis.evidence.implied_epochs - epochs) <= 1
    assert diagnosis.evidence.planned_epochs is None  # no plan was given
    assert diagnosis.forecast is not None
    assert diagnosis.forecast.horizon_epochs == diagnosis.evidence.implied_epochs


def test_an_accuracy_dip_while_the_val_loss_still_falls_is_not_overfitting() -> None:
    # A learning rate far too low on 2 classes: the loss falls steadily epoch after epoch,
    # the small validation set's accuracy jumps by a few points.
    rng = random.Random(4)
    epochs = 25
    val_acc = [0.45 + 0.013 * e + rng.gauss(0, 0.02) for e in range(epochs)]
    val_acc[-3:] = [max(val_acc) - 0.045, max(val_acc) - 0.04, max(val_acc) - 0.05]
    run = {
        "train_loss": [0.695 - 0.0016 * e for e in range(epochs)],
        "val_loss": [0.702 - 0.0016 * e for e in range(epochs)],
        "train_acc": [0.47 + 0.011 * e for e in range(epochs)],
        "val_acc": val_acc,
        "num_classes": 2,
    }
    diagnosis = diagnose_run(Curves.model_validate(run))
    assert diagnosis.label is not Label.OVERFITTING, diagnosis.summary


def test_the_reported_forecast_carries_the_best_so_far_and_each_reading() -> None:
    run = _drifting(30, seed=5) | {"plan": {"epochs": 200}}
    f = diagnose_run(Curves.model_validate(run)).forecast
    assert f is not None and f.metric == "val_acc"
    assert f.best_so_far == round(max(running_median(run["val_acc"], 3)), 4)
    assert f.shown_gain_probability is not None
    # the best a noisy path shows is never below what its mean curve reaches at the horizon
    assert f.shown_gain_probability >= f.gain_probability
