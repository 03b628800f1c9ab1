"""The misses issue 11 reported, each as a curve built by hand (factory style).

Forecast instead of slope, any loss scale, never-learned runs, LR schedules, ceilings.
"""

import math
import random
from typing import Any

import pytest

from studies.diagnosis import Curves, Diagnosis, Label, diagnose_run, live_check
from tests.diagnosis import factory


def _diagnose(data: dict[str, Any], **kwargs: Any) -> Diagnosis:
    return diagnose_run(Curves.model_validate(data), **kwargs)


def _mnist_nine_epochs() -> dict[str, Any]:
    """The issue's example: still paying 1 point and 8% of val loss per epoch at the end."""
    return {
        "train_loss": [1.9, 1.3, 1.0, 0.80, 0.70, 0.61, 0.54, 0.49, 0.45],
        "val_loss": [1.6, 1.1, 0.85, 0.76, 0.68, 0.59, 0.52, 0.48, 0.44],
        "train_acc": [0.45, 0.68, 0.79, 0.85, 0.875, 0.885, 0.895, 0.905, 0.915],
        "val_acc": [0.55, 0.74, 0.83, 0.86, 0.88, 0.89, 0.90, 0.91, 0.92],
        "num_classes": 10,
    }


def test_the_nine_epoch_mnist_run_still_paying_is_undertrained() -> None:
    diagnosis = _diagnose(_mnist_nine_epochs())
    assert diagnosis.label is Label.UNDERTRAINED, diagnosis.summary
    forecast = diagnosis.forecast
    assert forecast is not None and forecast.horizon_epochs == 18
    assert forecast.low <= forecast.at_horizon <= forecast.high
    longer = diagnosis.recommendations[0]
    assert longer.spec_change == {"train.epochs": 18}
    assert "9 more epochs" in longer.action and "by epoch 18" in longer.reason


def test_the_horizon_can_be_chosen() -> None:
    diagnosis = _diagnose(_mnist_nine_epochs(), horizon_epochs=40)
    assert diagnosis.forecast is not None and diagnosis.forecast.horizon_epochs == 40
    with pytest.raises(ValueError, match="horizon_epochs"):
        _diagnose(_mnist_nine_epochs(), horizon_epochs=0)


def _never_learned(epochs: int = 12, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    return {
        "train_loss": [2.33 + rng.gauss(0, 0.02) for _ in range(epochs)],
        "val_loss": [2.32 + rng.gauss(0, 0.02) for _ in range(epochs)],
        "train_acc": [0.1 + rng.gauss(0, 0.004) for _ in range(epochs)],
        "val_acc": [0.1 + rng.gauss(0, 0.006) for _ in range(epochs)],
        "num_classes": 10,
    }


@pytest.mark.parametrize("seed", range(5))
def test_stuck_at_chance_with_a_noisy_loss_just_above_log_k_is_diverged(seed: int) -> None:
    diagnosis = _diagnose(_never_learned(seed=seed))
    assert diagnosis.label is Label.DIVERGED, diagnosis.summary
    assert "never learned" in diagnosis.summary


def _step_decay(epochs: int, steps: tuple[int, ...]) -> dict[str, Any]:
    """Converging in stages: each LR step (×0.1) buys a sudden drop, then a new plateau."""

    def shape(e: int) -> factory.Point:
        stage = sum(e > s for s in steps)
        level = [0.30, 0.12, 0.08][stage]
        return (
            level * 0.8 + 2.0 * factory.decay(e),
            level + 2.0 * factory.decay(e),
            1 - level / 2 - 0.8 * factory.decay(e),
            1 - level / 1.8 - 0.8 * factory.decay(e),
        )

    data = factory.curves(epochs, shape, noise=0.003)
    data["lr"] = [0.1 * 0.1 ** sum(e > s for s in steps) for e in range(1, epochs + 1)]
    return data


def test_step_drops_of_a_converged_run_are_the_schedule_not_a_verdict() -> None:
    diagnosis = _diagnose(_step_decay(45, (15, 30)))
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary
    assert diagnosis.evidence.lr_change_epochs == [16, 31]
    assert diagnosis.evidence.segment_start_epoch == 31


def test_warm_restarts_of_a_converged_run_are_healthy() -> None:
    period = 10

    def lr(e: int) -> float:
        return 0.05 * (1 + math.cos(math.pi * ((e - 1) % period) / period)) / 2

    def shape(e: int) -> factory.Point:
        # After each restart the loss jumps a little, then settles lower again.
        bump = 0.05 * lr(e) / 0.05
        return (
            0.05 + bump + 2.0 * factory.decay(e),
            0.09 + bump + 2.0 * factory.decay(e),
            0.99 - bump / 2 - 0.9 * factory.decay(e),
            0.97 - bump / 2 - 0.9 * factory.decay(e),
        )

    data = factory.curves(40, shape, noise=0.002)
    data["lr"] = [lr(e) for e in range(1, 41)]
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary
    assert diagnosis.evidence.lr_change_epochs == [11, 21, 31]


def test_a_plateau_before_a_step_decay_is_not_underfitting() -> None:
    # The run as it looked before its LR step: a plateau at 85% train accuracy. The model fits
    # its training set well enough; the plateau is the learning rate's.
    data = _step_decay(40, (15, 30))
    cut = Curves.model_validate(data).prefix(15)
    assert diagnose_run(cut).label is not Label.UNDERFITTING


def _hard_task(train_top1: float) -> dict[str, Any]:
    """1,000 classes: validation settles at 76% top-1 with a small gap."""
    return factory.curves(
        40,
        lambda e: (
            1.0 + 6 * factory.decay(e, 5),
            1.1 + 6 * factory.decay(e, 5),
            train_top1 - (train_top1 - 0.001) * factory.decay(e, 5),
            0.76 - 0.759 * factory.decay(e, 5),
        ),
        noise=0.003,
    ) | {"num_classes": 1000}


def test_a_hard_task_at_76_percent_is_not_underfitting_without_study_context() -> None:
    assert _diagnose(_hard_task(0.80)).label is Label.HEALTHY


def test_underfitting_without_context_is_a_training_set_the_model_cannot_fit() -> None:
    data = _hard_task(0.30)
    data["val_acc"] = [min(v, 0.29) for v in data["val_acc"]]
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.UNDERFITTING, diagnosis.summary
    assert "cannot fit its own training set" in diagnosis.summary


def test_with_study_context_the_studys_best_is_the_ceiling() -> None:
    assert _diagnose(_hard_task(0.80), study_best_val_acc=0.95).label is Label.UNDERFITTING


@pytest.mark.parametrize("batch", [32, 128, 1024])
def test_a_sum_reduced_healthy_run_is_healthy(batch: int) -> None:
    data = factory.healthy()
    for name in ("train_loss", "val_loss"):
        data[name] = [batch * v for v in data[name]]
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary
    assert live_check(Curves.model_validate(data)) is None


def _mse(scale: float, epochs: int = 30) -> dict[str, Any]:
    """A regression loss (no accuracy): MSE on targets in the hundreds, or tiny."""
    rng = random.Random(1)
    return {
        "train_loss": [
            scale * (0.02 + math.exp(-e / 4)) * (1 + rng.gauss(0, 0.02)) for e in range(epochs)
        ],
        "val_loss": [
            scale * (0.03 + math.exp(-e / 4)) * (1 + rng.gauss(0, 0.02)) for e in range(epochs)
        ],
    }


@pytest.mark.parametrize("scale", [1e-4, 1.0, 4e4])
def test_a_regression_loss_at_any_scale_is_healthy(scale: float) -> None:
    diagnosis = _diagnose(_mse(scale))
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary


def test_a_regression_loss_that_blows_up_is_diverged_the_epoch_it_does() -> None:
    data = _mse(4e4, epochs=10)
    data["train_loss"][-1] = 20 * data["train_loss"][0]
    verdict = live_check(Curves.model_validate(data))
    assert verdict is not None and verdict.evidence.exploded_epoch == 10


def test_falling_negative_losses_are_judged_sign_aware() -> None:
    # A negative log-likelihood (e.g. a Gaussian NLL) going from 1 to -3: learning, not exploding.
    data = {
        "train_loss": [1.0 - 4 * (1 - math.exp(-e / 3)) for e in range(30)],
        "val_loss": [1.1 - 4 * (1 - math.exp(-e / 3)) for e in range(30)],
    }
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary
    data["train_loss"][-1] = 60.0  # far above the start, by 15 times the range: exploded
    assert _diagnose(data).label is Label.DIVERGED


def test_an_all_null_accuracy_list_is_a_missing_metric_not_zeros() -> None:
    data = factory.healthy()
    data["train_acc"] = [None] * 30
    data["val_acc"] = [float("nan")] * 30
    diagnosis = _diagnose(data)
    assert diagnosis.label is Label.HEALTHY, diagnosis.summary
    assert diagnosis.evidence.metrics == ["train_loss", "val_loss"]


def test_a_null_loss_stays_divergence_even_when_every_epoch_is_null() -> None:
    data = {"train_loss": [None, None, None], "val_acc": [0.1, 0.1, 0.1]}
    assert _diagnose(data).label is Label.DIVERGED


def test_the_forecast_is_documented_in_the_schema() -> None:
    schema = Diagnosis.model_json_schema()
    forecast = schema["$defs"]["Forecast"]
    for field in ("horizon_epochs", "at_horizon", "low", "high", "asymptote"):
        assert forecast["properties"][field]["description"]
    assert "probability" in schema["properties"]["confidence"]["description"].lower()
