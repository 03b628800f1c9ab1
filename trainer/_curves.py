"""The curves JSON (docs/architecture.md): its keys, and how a non-finite number is written.

The one definition of both, at the lowest layer that needs them: the trainer writes curves
(``History.curves``), the worker and the API rebuild them from stored epoch records, and
every JSON answer turns NaN and ±inf into ``null`` here (JSON has no NaN). Pure Python, no
torch, so the API server and the diagnoser's callers import it for free.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final

# The four metric lists: the diagnoser's core input, in this order.
METRIC_KEYS: Final = ("train_loss", "val_loss", "train_acc", "val_acc")
# The optional per-epoch training-health lists.
HEALTH_KEYS: Final = ("lr", "grad_norm", "grad_norm_first", "grad_norm_last", "dead_relu_fraction")
CURVE_KEYS: Final = METRIC_KEYS + HEALTH_KEYS


def finite_or_none(value: float | None) -> float | None:
    """The number as a JSON-safe float: None for missing, NaN and ±inf."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def json_safe(value: Any) -> Any:
    """*value* with every float inside (dicts and lists, recursively) made JSON-safe."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def curves_json(records: Iterable[Mapping[str, Any]], num_classes: int | None) -> dict[str, Any]:
    """The curves JSON of per-epoch records (``EpochRecord`` fields as a mapping).

    One entry per epoch, ``null`` for a non-finite value. ``dead_relu_fraction`` is left out
    when every epoch lacks it: the model has no ReLU, so there is nothing to measure.
    """
    rows = list(records)
    curves: dict[str, Any] = {
        key: [finite_or_none(row.get(key)) for row in rows] for key in CURVE_KEYS
    }
    if all(value is None for value in curves["dead_relu_fraction"]):
        del curves["dead_relu_fraction"]
    if num_classes is not None:
        curves["num_classes"] = num_classes
    return curves
