"""The LR range test on the real digits: the curve, early stopping, the suggestion rules."""

from __future__ import annotations

import math

import pytest

from tests.trainer.configs import small_digits_config
from trainer import ConfigError, ModelConfig, SuggestionRule, range_test
from trainer._range_test import lr_at_step, smooth, suggest


def test_curve_on_digits_falls_then_rises_and_the_suggestion_lies_in_the_range() -> None:
    result = range_test(small_digits_config(), lr_low=1e-4, lr_high=3.0, max_steps=150)
    assert len(result.lrs) == len(result.losses) == len(result.smoothed)
    # The rate rises exponentially from lr_low, step by step.
    assert result.lrs[0] == pytest.approx(1e-4)
    ratios = {round(b / a, 9) for a, b in zip(result.lrs, result.lrs[1:], strict=False)}
    assert len(ratios) == 1 and ratios.pop() > 1
    # Chance level (ln 10 = 2.30) at tiny rates; the loss falls; it rises again at the top.
    assert result.smoothed[5] == pytest.approx(math.log(10), abs=0.2)
    low = min(range(len(result.smoothed)), key=lambda i: result.smoothed[i])
    assert result.smoothed[low] < 0.8 * result.smoothed[5]
    assert max(result.smoothed[low:]) > result.smoothed[low] * 1.1
    s = result.suggestion
    assert s.lr is not None and s.rule is not None
    assert 1e-4 <= s.lr <= 3.0
    assert s.rule.value in s.reason
    # The suggestion is below the minimum: where the loss still falls, not where it blows up.
    assert s.minimum_lr is not None and s.lr < s.minimum_lr
    data = result.to_json()
    assert data["suggestion"] == s.lr and data["rule"] == s.rule.value
    assert data["steps"] == len(data["lrs"]) == len(data["smoothed"])


def test_a_run_that_diverges_stops_early() -> None:
    # Without normalization or weight decay, tanh units saturate and the logits blow up at
    # high rates (a batch-normed ReLU net mostly dies to chance level instead).
    config = small_digits_config(weight_decay=0.0).model_copy(
        update={"model": ModelConfig(arch="simple", width=8, norm="none", activation="tanh")}
    )
    result = range_test(config, lr_low=1e-3, lr_high=10.0, max_steps=200)
    assert result.stopped_early is not None
    assert len(result.lrs) < 200
    assert "diverged" in result.stopped_early or "non-finite" in result.stopped_early
    assert result.suggestion.lr is not None and result.suggestion.lr < result.lrs[-1]


def test_a_stop_request_ends_the_run_after_that_step() -> None:
    asked = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) >= 7

    result = range_test(small_digits_config(), lr_low=1e-4, lr_high=1.0, should_stop=stop)
    assert len(result.lrs) == 7
    assert result.stopped_early is not None and "on request" in result.stopped_early


def test_default_length_is_one_epoch_within_bounds() -> None:
    # digits: 1437 training images at batch 64 are 23 steps; the default is at least 100.
    result = range_test(
        small_digits_config(), lr_low=1e-4, lr_high=1e-3, should_stop=lambda: False
    )
    assert result.planned_steps == 100 and len(result.lrs) == 100


def test_ramp_and_smoothing() -> None:
    assert lr_at_step(0, lr_low=1e-4, lr_high=1.0, steps=5) == pytest.approx(1e-4)
    assert lr_at_step(4, lr_low=1e-4, lr_high=1.0, steps=5) == pytest.approx(1.0)
    assert lr_at_step(2, lr_low=1e-4, lr_high=1.0, steps=5) == pytest.approx(1e-2)
    # Bias correction: a constant loss is smoothed to itself from the first step on.
    assert smooth([2.0, 2.0, 2.0], 0.98) == pytest.approx([2.0, 2.0, 2.0])


def _curve(values: list[float]) -> tuple[list[float], list[float]]:
    lrs = [lr_at_step(i, lr_low=1e-5, lr_high=1.0, steps=len(values)) for i in range(len(values))]
    return lrs, values


def test_suggest_picks_steepest_on_a_clear_descent() -> None:
    # Flat, a steep fall around step 20, a minimum at 30, then a rise.
    values = [2.3] * 12 + [2.3 - 0.2 * i for i in range(1, 11)] + [0.3] * 8 + [0.5, 1.0, 2.0]
    lrs, smoothed = _curve(values)
    s = suggest(lrs, smoothed, lr_low=1e-5)
    assert s.rule is SuggestionRule.STEEPEST
    assert lrs[11] <= s.lr <= lrs[21]  # type: ignore[operator]
    assert "steepest" in s.reason


def test_suggest_falls_back_to_minimum_tenth_on_a_flat_curve() -> None:
    values = [2.30, 2.31, 2.29, 2.30, 2.30, 2.29, 2.31, 2.30, 2.28, 2.30, 2.29, 2.30, 2.4, 3.0]
    lrs, smoothed = _curve(values)
    s = suggest(lrs, smoothed, lr_low=1e-5)
    assert s.rule is SuggestionRule.MINIMUM_TENTH
    assert s.minimum_lr == lrs[8] and s.lr == pytest.approx(max(1e-5, lrs[8] / 10))
    assert "too flat" in s.reason


def test_suggest_with_no_finite_loss_has_no_suggestion() -> None:
    s = suggest([1e-3, 1e-2], [math.nan, math.nan], lr_low=1e-3)
    assert s.lr is None and s.rule is None and "lower lr_low" in s.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lr_low": 0.0, "lr_high": 1.0}, "lr_low"),
        ({"lr_low": 1e-2, "lr_high": 1e-3}, "lr_high"),
        ({"lr_low": 1e-4, "lr_high": 1.0, "max_steps": 1}, "max_steps"),
        ({"lr_low": 1e-4, "lr_high": 1.0, "diverge_factor": 1.0}, "diverge_factor"),
        ({"lr_low": 1e-4, "lr_high": 1.0, "smoothing": 1.0}, "smoothing"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}:"):
        range_test(small_digits_config(), **kwargs)  # type: ignore[arg-type]
