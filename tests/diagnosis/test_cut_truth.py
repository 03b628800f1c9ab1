"""The labeled set's ground truth for cuts (bench/diagnoser/dataset.py): a cut is labeled by
what the rest of the same run shows, up to its end."""

from collections.abc import Sequence
from types import ModuleType
from typing import Any

import pytest

from tests.diagnosis.bench_modules import bench_fixture

dataset = bench_fixture("dataset")


def _run(label: str, val_acc: list[float], val_loss: Sequence[float | None] | None = None,
         num_classes: int = 10, **extra: Any) -> dict[str, Any]:
    n = len(val_acc)
    loss = list(val_loss) if val_loss is not None else [1.0 - a for a in val_acc]
    return {
        "id": f"test-{label}-s0", "label": label, "split": "train",
        "curves": {"train_loss": loss, "val_loss": loss, "train_acc": val_acc,
                   "val_acc": val_acc, "lr": [0.1] * n, "num_classes": num_classes},
        **extra,
    }


def test_a_cut_is_undertrained_when_accuracy_later_rises_three_points(
    dataset: ModuleType,
) -> None:
    # A plateau at 0.90, then a step decay buys 4 points: the plateau was not the end.
    run = _run("healthy", [0.5, 0.8, 0.9, 0.9, 0.9, 0.9, 0.94, 0.94, 0.94, 0.94],
               [1.0, 0.5, 0.35, 0.35, 0.35, 0.35, 0.32, 0.32, 0.32, 0.32])
    assert dataset.cut_truth(run, 5) == "undertrained"
    # After the drop nothing more comes: the healthy run had settled.
    assert dataset.cut_truth(run, 7) == "healthy"


def test_a_cut_is_undertrained_when_val_loss_later_falls_twenty_percent(
    dataset: ModuleType,
) -> None:
    flat_acc = [0.99] * 12
    falling = [0.10, 0.09, 0.08, 0.075, 0.07, 0.066, 0.062, 0.058, 0.055, 0.053, 0.052, 0.051]
    run = _run("healthy", flat_acc, falling)
    assert dataset.cut_truth(run, 4) == "undertrained"  # 0.075 → 0.051: -32 %
    assert dataset.cut_truth(run, 8) is None  # 0.058 → 0.051: -12 %, between the two bands


def test_one_lucky_epoch_is_not_a_payoff(dataset: ModuleType) -> None:
    run = _run("healthy", [0.6, 0.85, 0.9, 0.9, 0.9, 0.96, 0.9, 0.9, 0.9, 0.9],
               [1.0, 0.4, 0.3, 0.3, 0.3, 0.29, 0.3, 0.3, 0.3, 0.3])
    assert dataset.cut_truth(run, 4) == "healthy"


def test_settled_cuts_take_the_construction_except_undertrained(dataset: ModuleType) -> None:
    acc = [0.3, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    loss = [2.0, 1.4, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2, 1.2]
    assert dataset.cut_truth(_run("underfitting", acc, loss), 4) == "underfitting"
    assert dataset.cut_truth(_run("undertrained", acc, loss), 4) is None
    assert dataset.cut_truth(_run("overfitting", acc, loss), 4) is None  # never turned up


def test_an_overfitting_cut_has_passed_its_best(dataset: ModuleType) -> None:
    acc = [0.5, 0.7, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    loss = [2.0, 1.0, 0.6, 0.55, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5]
    assert dataset.cut_truth(_run("overfitting", acc, loss), 9) == "overfitting"


def test_a_diverged_cut_is_diverged_only_once_it_never_learns_again(
    dataset: ModuleType,
) -> None:
    never = _run("diverged", [0.1, 0.12, 0.09, 0.11, 0.1, 0.13, 0.1, 0.1],
                 [2.4, 2.5, 2.35, 2.6, 2.4, 2.5, 2.45, 2.4])
    assert dataset.cut_truth(never, 3) == "diverged"
    # Learned to 0.9, then blew up at epoch 6 and stayed at chance.
    collapsed = _run("diverged", [0.5, 0.8, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1],
                     [1.0, 0.5, 0.3, 0.3, 0.3, 40.0, None, None, None, None])
    assert dataset.cut_truth(collapsed, 3) is None  # cannot be known at epoch 3
    assert dataset.cut_truth(collapsed, 6) == "diverged"
    # On two classes chance is 0.5: 0.52 is not learning.
    two = _run("diverged", [0.5, 0.52, 0.49, 0.5, 0.51, 0.5, 0.5, 0.5], num_classes=2)
    assert dataset.cut_truth(two, 3) == "diverged"


def test_cut_points_leave_a_future_and_reach_long_runs(dataset: ModuleType) -> None:
    assert dataset.cut_points(15) == [3, 4, 5, 6, 8, 10, 12]
    assert dataset.cut_points(300)[-1] == 200  # 250 would leave 50 < 250/4 epochs
    assert dataset.cut_points(320)[-1] == 250
    assert dataset.cut_points(5) == []


def test_the_sum_reduced_view_scales_the_losses_and_keeps_every_truth(
    dataset: ModuleType,
) -> None:
    acc = [0.3 + 0.05 * i for i in range(12)] + [0.9] * 12
    loss = [2.0 - 0.12 * i for i in range(12)] + [0.6] * 12
    run = _run("healthy", acc, loss, sum_reduced_scale=64)
    shown, ambiguous = dataset.samples([run], cuts=True)
    mean = {s.epochs: s for s in shown if s.reduction == "mean"}
    summed = {s.epochs: s for s in shown if s.reduction == "sum"}
    assert mean.keys() == summed.keys() and len(mean) >= 5
    for epochs, sample in summed.items():
        assert sample.truth == mean[epochs].truth
        assert sample.name.endswith("+sum")
        assert sample.curves.val_loss == pytest.approx(
            [64 * v for v in mean[epochs].curves.val_loss]
        )
    plain, plain_ambiguous = dataset.samples([run], cuts=True, sum_views=False)
    assert len(plain) == len(mean) and 2 * plain_ambiguous == ambiguous
