"""Same config and seed ⇒ the same curves packed as alone (issue 15), on CPU, for every
architecture, norm and optimizer, and for the recipe's other parts."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import pytest

from trainer import (
    DataConfig,
    History,
    ModelConfig,
    OptimConfig,
    RunConfig,
    RunStatus,
    train,
    train_packed,
)

# Wall-clock fields: a packed member shares its pack's time, so these differ by design.
TIMING_FIELDS = ("seconds", "images_per_s")
# Gradient norms of convolutions followed by BatchNorm are sums with heavy cancellation,
# which carry a rounding difference in the weights far: the unpacked trainer alone moves
# the first layer's by up to 6e-4 (relative) between one and two CPU threads. The packed
# network's channels-last maps on a CPU (trainer._packed_models; another summation order
# in BatchNorm) move them by up to 1.4e-2 here (vgg, SGD at rate 0.1), while every loss
# stays within 1e-4 and every accuracy equal.
RELATIVE_TOLERANCE = {"grad_norm": 2e-2, "grad_norm_first": 2e-2, "grad_norm_last": 2e-2}


def tiny_digits_config(
    model: dict[str, Any] | None = None, data: dict[str, Any] | None = None, **optim: Any
) -> RunConfig:
    """A few hundred digits, width 4, two epochs on CPU: fast enough to run many."""
    return RunConfig(
        data=DataConfig.model_validate({"dataset": "digits", "train_subset": 300, **(data or {})}),
        model=ModelConfig.model_validate({"arch": "simple", "width": 4, **(model or {})}),
        optim=OptimConfig.model_validate(
            {"lr": 0.05, "epochs": 2, "batch_size": 32, "device": "cpu", **optim}
        ),
    )


def assert_same_curves(packed: History, alone: History) -> None:
    """Every measured value of every epoch equal within float rounding (NaN equals NaN)."""
    assert packed.status == alone.status
    assert packed.stop_reason == alone.stop_reason
    assert packed.best_epoch == alone.best_epoch
    assert len(packed.records) == len(alone.records)
    for got, want in zip(packed.records, alone.records, strict=True):
        for name, value in asdict(want).items():
            if name in TIMING_FIELDS:
                continue
            other = getattr(got, name)
            if value is None or isinstance(value, bool):
                assert other is value, f"epoch {want.epoch} {name}: {other} vs {value}"
            elif isinstance(value, float) and math.isnan(value):
                assert math.isnan(other), f"epoch {want.epoch} {name}: {other} vs NaN"
            else:
                rel = RELATIVE_TOLERANCE.get(name, 1e-4)
                assert other == pytest.approx(value, rel=rel, abs=1e-6), (
                    f"epoch {want.epoch} {name}: packed {other} vs alone {value}"
                )


# Three members with different learning rates, weight decays and (SGD) momenta.
MEMBERS: dict[str, list[dict[str, Any]]] = {
    "sgd": [
        {"lr": 0.05, "weight_decay": 5e-4, "momentum": 0.9},
        {"lr": 0.01, "weight_decay": 0.0, "momentum": 0.5},
        {"lr": 0.1, "weight_decay": 1e-3, "momentum": 0.0},
    ],
    "adam": [
        {"lr": 1e-3, "weight_decay": 0.0},
        {"lr": 3e-3, "weight_decay": 1e-4},
        {"lr": 1e-2, "weight_decay": 1e-3},
    ],
    "adamw": [
        {"lr": 1e-3, "weight_decay": 1e-2},
        {"lr": 3e-3, "weight_decay": 0.0},
        {"lr": 1e-2, "weight_decay": 5e-2},
    ],
}


def _check_members(
    model: dict[str, Any], optimizer: str, data: dict[str, Any] | None = None, **recipe: Any
) -> None:
    configs = [
        tiny_digits_config(model, data, optimizer=optimizer, **recipe, **member)
        for member in MEMBERS[optimizer]
    ]
    packed = train_packed(configs)
    for config, history in zip(configs, packed, strict=True):
        assert history.config == config
        assert_same_curves(history, train(config))


@pytest.mark.parametrize("norm", ["batch", "layer", "none"])
@pytest.mark.parametrize("arch", ["simple", "vgg", "resnet"])
def test_every_architecture_and_norm_trains_as_alone(arch: str, norm: str) -> None:
    _check_members({"arch": arch, "norm": norm}, "sgd")


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
@pytest.mark.parametrize("arch", ["simple", "vgg", "resnet"])
def test_every_optimizer_trains_as_alone(arch: str, optimizer: str) -> None:
    _check_members({"arch": arch, "norm": "batch"}, optimizer)


def test_nesterov_momentum_trains_as_alone() -> None:
    configs = [
        tiny_digits_config({"arch": "vgg"}, nesterov=True, lr=lr, momentum=momentum)
        for lr, momentum in ((0.05, 0.9), (0.02, 0.5))
    ]
    for config, history in zip(configs, train_packed(configs), strict=True):
        assert_same_curves(history, train(config))


@pytest.mark.parametrize(
    "recipe",
    [
        {"schedule": "cosine", "warmup_epochs": 0.5, "epochs": 3},
        {"schedule": "step", "step_size": 1, "step_gamma": 0.5},
        {"label_smoothing": 0.1},
    ],
    ids=["cosine-warmup", "step", "label-smoothing"],
)
def test_schedules_and_label_smoothing_train_as_alone(recipe: dict[str, Any]) -> None:
    _check_members({"arch": "simple"}, "sgd", **recipe)


@pytest.mark.parametrize("activation", ["gelu", "tanh", "leaky_relu"])
def test_dropout_augmentation_and_activations_train_as_alone(activation: str) -> None:
    # Dropout masks come from the seed's stream, which packed members share; crop+flip
    # augmentation draws from the data-order generator, also shared.
    model = {"arch": "vgg", "dropout": 0.3, "activation": activation}
    _check_members(model, "adam", {"augment": "crop+flip"})


def test_each_member_clips_its_own_gradient_norm() -> None:
    configs = [
        tiny_digits_config(lr=0.1, grad_clip=0.05),  # clipped at almost every step
        tiny_digits_config(lr=0.1),  # never clipped
        tiny_digits_config(lr=0.05, grad_clip=1.0),
    ]
    packed = train_packed(configs)
    alone = [train(c) for c in configs]
    for p, a in zip(packed, alone, strict=True):
        assert_same_curves(p, a)
    # The clip made a difference, so the test can tell a shared clip from per-member ones.
    assert packed[0].records[-1].train_loss != pytest.approx(packed[1].records[-1].train_loss)


def test_a_diverging_member_stops_alone_and_poisons_no_other() -> None:
    configs = [
        tiny_digits_config({"norm": "none"}, lr=0.05, epochs=3),
        tiny_digits_config({"norm": "none"}, lr=1e6, epochs=3),  # NaN within the first steps
        tiny_digits_config({"norm": "none"}, lr=0.01, epochs=3),
    ]
    packed = train_packed(configs)
    diverged, alone = packed[1], train(configs[1])
    assert diverged.status is RunStatus.DIVERGED
    assert alone.status is RunStatus.DIVERGED
    assert diverged.stop_reason == alone.stop_reason
    assert len(diverged.records) == len(alone.records) == 1
    assert diverged.records[0].nonfinite
    for index in (0, 2):
        assert packed[index].status is RunStatus.COMPLETED
        assert_same_curves(packed[index], train(configs[index]))
