"""Learning-rate schedule as a pure function of the step (no scheduler objects)."""

from __future__ import annotations

import math

from trainer._config import OptimConfig


def lr_at(step: int, *, steps_per_epoch: int, cfg: OptimConfig) -> float:
    """Learning rate for optimizer step *step* (0-based).

    Linear warm-up from ``lr / warmup_steps`` to ``lr`` over ``warmup_epochs``, then
    ``none``: constant; ``cosine``: half a cosine from ``lr`` to 0 at the last step;
    ``step``: multiplied by ``step_gamma`` every ``step_size`` epochs.
    """
    total = cfg.epochs * steps_per_epoch
    warmup = min(total, round(cfg.warmup_epochs * steps_per_epoch))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    if cfg.schedule == "cosine":
        span = max(1, total - warmup)
        progress = min(1.0, (step - warmup) / span)
        return cfg.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    if cfg.schedule == "step":
        return cfg.lr * cfg.step_gamma ** ((step // steps_per_epoch) // cfg.step_size)
    return cfg.lr
