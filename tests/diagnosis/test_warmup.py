"""A warm-up past the learning rate the network tolerates (studies/diagnosis/_warmup.py): with
a plan that still raises the LR, a training loss that has turned up is heading for divergence;
one still falling is not, nor is a loss that turns up once the warm-up is over."""

import math
import re

import pytest

from studies.diagnosis import Curves, Label, diagnose_run

EPOCHS = 40
WARMUP = 20


def _warmup_lr(epoch: int) -> float:
    """Linear warm-up to 1.0 over WARMUP epochs, then constant (epoch is 0-based)."""
    return min(1.0, (epoch + 1) / WARMUP)


def _run(cut: int, turns_up_after: int | None, *, plan: bool = True) -> Curves:
    """*cut* epochs of a 10-class run whose losses fall, then (from *turns_up_after*) rise."""
    train_loss, val_loss, train_acc, val_acc = [], [], [], []
    for e in range(cut):
        fall = 2.3 * math.exp(-e / 3) + 0.2
        up = 0.0 if turns_up_after is None else 0.15 * max(0, e - turns_up_after)
        train_loss.append(fall + up)
        val_loss.append(fall + 0.05 + up)
        train_acc.append(min(0.99, 0.95 - 0.85 * math.exp(-e / 3) - up / 3))
        val_acc.append(min(0.99, 0.93 - 0.83 * math.exp(-e / 3) - up / 3))
    data = {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "train_acc": train_acc,
        "val_acc": val_acc,
        "num_classes": 10,
        "lr": [_warmup_lr(e) for e in range(cut)],
    }
    if plan:
        data["plan"] = {"epochs": EPOCHS, "lr": [_warmup_lr(e) for e in range(EPOCHS)]}
    return Curves.model_validate(data)


def test_a_loss_turned_up_mid_warm_up_is_heading_for_divergence() -> None:
    diagnosis = diagnose_run(_run(12, turns_up_after=6))
    assert diagnosis.label is Label.DIVERGED, diagnosis.summary
    assert "turned up after epoch" in diagnosis.summary
    assert "the plan raises it" in diagnosis.summary


@pytest.mark.parametrize(
    ("case", "curves"),
    [
        ("its loss still falls", _run(12, turns_up_after=None)),
        ("the plan raises the LR no more", _run(30, turns_up_after=24)),
        ("no plan says what is ahead", _run(12, turns_up_after=6, plan=False)),
    ],
)
def test_otherwise_this_rule_says_nothing(case: str, curves: Curves) -> None:
    diagnosis = diagnose_run(curves)
    assert "the plan raises it" not in diagnosis.summary, case


def test_its_next_step_is_the_rate_where_the_summary_says_the_loss_was_lowest() -> None:
    # The advice and the summary read the same (smoothed) lowest epoch: the rate advised is
    # the one the summary names, whichever single epoch's raw loss happened to be lowest.
    curves = _run(12, turns_up_after=6)
    assert curves.lr is not None
    diagnosis = diagnose_run(curves)
    said = re.search(
        r"turned up after epoch (\d+) \(learning rate ([0-9.e-]+) there", diagnosis.summary
    )
    assert said is not None, diagnosis.summary
    epoch, rate = int(said.group(1)), float(said.group(2))
    assert rate == pytest.approx(curves.lr[epoch - 1], rel=1e-2)
    first = diagnosis.recommendations[0]
    assert first.spec_change == {"search.lr_high": float(f"{curves.lr[epoch - 1]:.2g}")}
    assert "no higher than" in first.action


def test_a_run_that_blew_up_at_a_constant_rate_is_told_to_divide_it() -> None:
    exploded = {
        "train_loss": [2.3, 1.5, 1.2, 40.0, 900.0],
        "val_loss": [2.2, 1.6, 1.3, 50.0, 1e3],
        "num_classes": 10,
        "lr": [0.5] * 5,
    }
    first = diagnose_run(Curves.model_validate(exploded)).recommendations[0]
    assert first.action == "Divide the learning rate by 10"
    assert first.spec_change == {"search.lr_high": 0.05}
