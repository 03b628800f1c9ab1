"""Tiny study specs for service tests: digits, a small model, few epochs, so trials take seconds;
and request cases both the in-process app and a served one are checked with."""

from __future__ import annotations

from typing import Any

# A method each path does not take, and the ``Allow`` its 405 names: the in-process app
# (tests/service/test_api.py) and a served one (test_schemathesis.py) answer them alike.
METHODS_NOT_ALLOWED = [
    ("TRACE", "/v1/studies", "GET, POST"),
    ("PUT", "/v1/studies", "GET, POST"),
    ("PATCH", "/v1/studies/1", "GET, DELETE"),
    ("GET", "/v1/studies/1/cancel", "POST"),
    ("DELETE", "/v1/trials/1", "GET"),
    ("TRACE", "/healthz", "GET"),
    ("POST", "/readyz", "GET"),
]


def tiny_spec(
    name: str = "tiny-grid",
    *,
    grid: tuple[float, ...] = (0.1, 0.01),
    epochs: int = 2,
    **overrides: Any,
) -> dict[str, Any]:
    """A grid study on a subset of digits with a narrow two-stage CNN."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": "digits",
        "data": {"train_subset": 400},
        "model": {"arch": "simple", "width": 8, "stages": 2},
        "train": {"epochs": epochs, "batch_size": 64},
        "search": {"sampler": "grid", "grid": list(grid)},
        # One trial per claim: these tests count workers and attempts per trial; packed
        # runs have their own tests (tests/studies/test_pack_*.py).
        "max_pack": 1,
    }
    spec.update(overrides)
    return spec


def healthy_curves(epochs: int = 12) -> dict[str, Any]:
    """Curves of a run that converged: losses fall and flatten, accuracies rise and flatten."""
    train_loss = [2.3 * 0.6**e + 0.05 for e in range(epochs)]
    val_loss = [2.3 * 0.6**e + 0.09 for e in range(epochs)]
    train_acc = [0.98 - 0.88 * 0.6**e for e in range(epochs)]
    val_acc = [0.96 - 0.86 * 0.6**e for e in range(epochs)]
    return {
        "train_loss": train_loss,
        "val_loss": val_loss,
        "train_acc": train_acc,
        "val_acc": val_acc,
        "num_classes": 10,
    }


def diverged_curves() -> dict[str, Any]:
    """A run whose loss blew up to a non-finite value (JSON null) at epoch 3."""
    return {
        "train_loss": [2.3, 5.1, None],
        "val_loss": [2.3, 7.9, None],
        "train_acc": [0.1, 0.1, 0.1],
        "val_acc": [0.1, 0.09, 0.1],
        "num_classes": 10,
    }
