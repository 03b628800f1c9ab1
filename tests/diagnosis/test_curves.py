"""The diagnoser's input model: what it accepts, and the error it gives for what it refuses."""

import math
from typing import Any

import pytest
from pydantic import ValidationError

from studies.diagnosis import MAX_CURVE_EPOCHS, Curves


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        Curves.model_validate(data)
    error = info.value.errors()[0]
    return ".".join(str(part) for part in error["loc"]) + ": " + error["msg"]


def test_nulls_and_python_nans_both_mean_non_finite() -> None:
    curves = Curves.model_validate(
        {"train_loss": [2.0, None, math.nan], "val_loss": [2.1, math.inf, 1.0]}
    )
    assert curves.train_loss == [2.0, None, None]
    assert curves.val_loss == [2.1, None, 1.0]
    assert curves.epochs == 3
    assert curves.metrics == ["train_loss", "val_loss"]


def test_unknown_keys_of_a_train_out_file_are_ignored() -> None:
    data = {
        "train_acc": [0.5, 0.7, 0.8],
        "status": "completed",
        "config": {"optim": {"lr": 0.1}},
        "best_epoch": 3,
    }
    assert Curves.model_validate(data).train_acc == [0.5, 0.7, 0.8]


def test_keras_history_names_are_accepted() -> None:
    data = {"loss": [1.0, 0.5, 0.4], "accuracy": [0.5, 0.8, 0.9], "val_accuracy": [0.5, 0.7, 0.8]}
    curves = Curves.model_validate(data)
    assert curves.train_loss == [1.0, 0.5, 0.4]
    assert curves.val_acc == [0.5, 0.7, 0.8]


def test_a_json_document_with_nan_literals_validates() -> None:
    curves = Curves.model_validate_json('{"train_loss": [1, NaN, Infinity], "num_classes": 10}')
    assert curves.train_loss == [1.0, None, None]


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"train_loss": []}, "train_loss", "at least 1 item"),
        ({"train_loss": [1.0, 2.0], "val_loss": [1.0]}, "", "val_loss has 1"),
        ({"train_acc": [0.5, 1.5]}, "train_acc", "outside [0, 1]"),
        ({"val_acc": [50.0, 60.0]}, "val_acc", "not percentages"),
        ({"train_loss": [1.0, "2.0"]}, "train_loss.1", "valid number"),
        ({"train_loss": [1.0, "NaN"]}, "train_loss.1", "valid number"),
        ({"train_loss": [1.0, True]}, "train_loss.1", "valid number"),
        ({"train_loss": "1,2,3"}, "train_loss", "valid list"),
        ({"train_loss": [1.0], "num_classes": "10"}, "num_classes", "valid integer"),
        ({"train_loss": [1.0], "num_classes": 1}, "num_classes", "greater than or equal to 2"),
        ({"status": "completed"}, "", "no curves"),
        (
            {"train_loss": [1.0] * (MAX_CURVE_EPOCHS + 1)},
            "train_loss",
            f"at most {MAX_CURVE_EPOCHS}",
        ),
        ({"train_loss": [1.0, 2.0], "lr": [0.1]}, "", "lr has 1"),
        ({"train_loss": [1.0], "lr": [-0.1]}, "lr", "negative"),
    ],
    ids=[
        "empty",
        "unequal-lengths",
        "acc-above-one",
        "percentages",
        "string-number",
        "nan-string",
        "boolean",
        "not-a-list",
        "string-num-classes",
        "one-class",
        "no-metric",
        "too-many-epochs",
        "health-list-length",
        "negative-lr",
    ],
)
def test_bad_input_names_the_field_and_the_reason(
    data: dict[str, Any], field: str, reason: str
) -> None:
    message = _error(data)
    assert message.startswith(f"{field}: ")
    assert reason in message


def test_prefix_is_the_run_as_it_looked_then() -> None:
    curves = Curves.model_validate({"train_loss": [3.0, 2.0, 1.0], "lr": [0.1, 0.1, 0.01]})
    cut = curves.prefix(2)
    assert cut.train_loss == [3.0, 2.0]
    assert cut.lr == [0.1, 0.1]
