"""Hand-written curves with known shapes, for unit tests (real runs live in bench/diagnoser)."""

import math
import random
from collections.abc import Callable
from typing import Any

Point = tuple[float, float, float, float]  # train_loss, val_loss, train_acc, val_acc


def curves(
    epochs: int, shape: Callable[[int], Point], *, noise: float = 0.0, seed: int = 0
) -> dict[str, Any]:
    """A curves JSON object from *shape* (epoch -> the four metrics), with Gaussian noise."""
    rng = random.Random(seed)
    out: dict[str, Any] = {"train_loss": [], "val_loss": [], "train_acc": [], "val_acc": []}
    out["num_classes"] = 10
    for epoch in range(1, epochs + 1):
        tl, vl, ta, va = shape(epoch)
        out["train_loss"].append(max(1e-4, tl + rng.gauss(0, noise)))
        out["val_loss"].append(max(1e-4, vl + rng.gauss(0, 2 * noise)))
        out["train_acc"].append(min(1.0, max(0.0, ta + rng.gauss(0, noise / 4))))
        out["val_acc"].append(min(1.0, max(0.0, va + rng.gauss(0, noise / 2))))
    return out


def decay(epoch: int, tau: float = 3.0) -> float:
    """1 at epoch 0, falling exponentially with time constant *tau* epochs."""
    return math.exp(-epoch / tau)


def healthy(epochs: int = 30, *, noise: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """Converges by epoch ~15 to 98% val accuracy with a 1-point gap."""
    return curves(
        epochs,
        lambda e: (
            2.3 * decay(e) + 0.03,
            2.3 * decay(e) + 0.07,
            0.99 - 0.89 * decay(e),
            0.98 - 0.88 * decay(e),
        ),
        noise=noise,
        seed=seed,
    )


def overfitting(epochs: int = 40, *, noise: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """Train loss to zero; val loss bottoms out at epoch ~9 and climbs; val accuracy sags."""
    return curves(
        epochs,
        lambda e: (
            2.3 * decay(e) + 0.003,
            2.0 * decay(e) + 0.6 + 0.025 * max(0, e - 9),
            1.0 - 0.9 * decay(e),
            0.8 - 0.7 * decay(e) - 0.002 * max(0, e - 9),
        ),
        noise=noise,
        seed=seed,
    )


def underfitting(epochs: int = 30, *, noise: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """Plateaus by epoch ~10 at 60% train and val accuracy."""
    return curves(
        epochs,
        lambda e: (
            1.3 + decay(e, 2),
            1.32 + decay(e, 2),
            0.6 - 0.5 * decay(e, 2),
            0.59 - 0.5 * decay(e, 2),
        ),
        noise=noise,
        seed=seed,
    )


def undertrained(epochs: int = 10, *, noise: float = 0.01, seed: int = 0) -> dict[str, Any]:
    """A low learning rate: everything still improving linearly at the last epoch."""
    return curves(
        epochs,
        lambda e: (2.3 - 0.1 * e, 2.3 - 0.1 * e, 0.1 + 0.05 * e, 0.1 + 0.05 * e),
        noise=noise,
        seed=seed,
    )


def collapsed(epochs: int = 8, *, seed: int = 0) -> dict[str, Any]:
    """LR far too high, as the real runs of bench/diagnoser show it: a first epoch far above
    log(10) (but not 10×), then stuck at chance accuracy with a noisy loss just above log(10)."""
    return curves(
        epochs,
        lambda e: (9.0 if e == 1 else 2.45, 2.5, 0.1, 0.1),
        noise=0.02,
        seed=seed,
    )
