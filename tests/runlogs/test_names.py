"""Names → curves: what each common framework's key stands for, and what is refused."""

from __future__ import annotations

import pytest

from studies.runlogs import IgnoreReason, RunLogError, parse_map
from studies.runlogs._names import Candidate, Rejection, recognise


@pytest.mark.parametrize(
    ("key", "curve"),
    [
        ("val_loss", "val_loss"),  # the curves' own keys
        ("loss", "train_loss"),  # Keras
        ("accuracy", "train_acc"),
        ("val_accuracy", "val_acc"),
        ("learning_rate", "lr"),
        ("validation_loss", "val_loss"),
        ("val_loss_epoch", "val_loss"),  # Lightning
        ("train_loss_step", "train_loss"),
        ("lr-SGD", "lr"),  # Lightning's LearningRateMonitor
        ("Loss/train", "train_loss"),  # PyTorch's tutorial
        ("Accuracy/test", "val_acc"),
        ("validation/epoch_accuracy", "val_acc"),  # Keras' TensorBoard callback
        ("train/epoch_learning_rate", "lr"),
        ("valLoss", "val_loss"),
        ("eval_acc", "val_acc"),
    ],
)
def test_names_map_to_their_curve(key: str, curve: str) -> None:
    found = recognise(key)
    assert isinstance(found, Candidate), found
    assert found.curve == curve


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("epoch", IgnoreReason.INDEX),
        ("global_step", IgnoreReason.INDEX),
        ("hp_metric", IgnoreReason.NOT_A_METRIC),
        ("val_top5_acc", IgnoreReason.UNRECOGNISED_METRIC),
        ("train_val_loss", IgnoreReason.UNRECOGNISED_METRIC),
        ("evaluation_loss_vs_iterations", IgnoreReason.UNRECOGNISED_METRIC),
        ("f1", IgnoreReason.UNRECOGNISED_METRIC),
        ("gpu_memory", IgnoreReason.NOT_A_METRIC),
    ],
)
def test_other_names_are_reported_with_a_reason(key: str, reason: IgnoreReason) -> None:
    found = recognise(key)
    assert isinstance(found, Rejection), found
    assert found.reason == reason


def test_per_epoch_beats_plain_beats_per_step_and_val_beats_test() -> None:
    def rank(key: str) -> tuple[int, int, int]:
        found = recognise(key)
        assert isinstance(found, Candidate)
        return found.rank

    assert rank("val_loss") < rank("val_loss_epoch") < rank("validation_loss")
    assert rank("validation_loss") < rank("val_loss_step") < rank("test_loss")


@pytest.mark.parametrize(
    ("items", "field", "reason"),
    [
        (["val_loss"], "map", "is not CURVE=KEY"),
        (["val_loss="], "map", "is not CURVE=KEY"),
        (["validation=loss/val"], "map.validation", "not a curve; give one of train_loss"),
        (["val_loss=x", "train_loss=x"], "map", "'x' is given for two curves"),
    ],
)
def test_bad_maps_name_the_option(items: list[str], field: str, reason: str) -> None:
    with pytest.raises(RunLogError) as caught:
        parse_map(items)
    assert caught.value.field == field
    assert reason in caught.value.reason


def test_a_map_value_may_hold_equals_signs_and_slashes() -> None:
    assert parse_map([" val_loss = loss/val ", "lr=lr=sgd"]) == {
        "val_loss": "loss/val", "lr": "lr=sgd"
    }
