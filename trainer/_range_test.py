"""The learning-rate range test (Smith, "Cyclical Learning Rates for Training Neural
Networks", 2017; popularised as fastai's ``lr_find``).

One short training run whose learning rate rises exponentially, step by step, from
``lr_low`` to ``lr_high``: the loss first barely moves (too small a rate), then falls
fastest, then flattens and blows up (too large). The run stops once the smoothed loss
exceeds ``diverge_factor`` times its minimum (fastai: 4), since nothing after that point
says more. The model, optimizer, data and augmentation are built exactly as ``train``
builds them (``_loop.build_network``, ``augmentation``, the optimizer); only the
learning rate is the test's.

The suggestion (``suggest``) is one of the two rules fastai users read off the curve:

- ``steepest``: where the smoothed loss falls fastest against log10(lr), the middle of the
  rates that train, Smith's reading of the curve;
- ``minimum/10``: a tenth of the rate at the smoothed loss's minimum (fastai's ``lr_min``),
  safely below where the run starts to diverge.

Steepest is chosen when the curve has a real descent to read a slope from; on a flat or
noisy curve the steepest slope is a fluctuation, and minimum/10 is the robust reading.
The result says which rule was used and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import torch
from torch import nn

from trainer._batches import batch_bounds
from trainer._config import RunConfig
from trainer._curves import finite_or_none
from trainer._data import prepare_data
from trainer._errors import ConfigError
from trainer._loop import (
    CHANNELS_LAST,
    _make_optimizer,
    augmentation,
    build_network,
    resolve_device,
    uses_bf16,
)

# fastai's lr_find defaults (start_lr=1e-7 is below anything these CNNs train with).
DEFAULT_DIVERGE_FACTOR = 4.0  # stop once the smoothed loss exceeds 4x its minimum
DEFAULT_SMOOTHING = 0.98  # the exponential moving average's beta
# Default length: one epoch, but at least fastai's 100 steps (a small dataset's epoch is
# too few points for a smoothed curve; the batches simply cycle) and at most a few hundred
# (a range test is a quick look, not a training run).
MIN_DEFAULT_STEPS = 100
MAX_DEFAULT_STEPS = 300
MAX_STEPS = 5000
# The first steps are ignored by the suggestion: the moving average is still dominated by
# its first values there (bias correction makes it unbiased, not calm).
SKIP_START_FRACTION = 0.1
MIN_SKIP_START = 3
# A descent smaller than this fraction of the starting smoothed loss is "flat": its
# steepest slope is noise, so minimum/10 is suggested instead.
MIN_DESCENT = 0.05


class SuggestionRule(StrEnum):
    STEEPEST = "steepest"
    MINIMUM_TENTH = "minimum/10"


@dataclass(frozen=True)
class Suggestion:
    """A suggested learning rate, the rule that chose it, and why (one sentence)."""

    lr: float | None  # None: no finite loss at all, nothing to suggest
    rule: SuggestionRule | None
    reason: str
    steepest_lr: float | None  # both candidates, whichever was chosen
    minimum_lr: float | None  # the rate at the smoothed loss's minimum (not divided)


@dataclass(frozen=True)
class RangeTestResult:
    """Loss against learning rate, one entry per step taken, and the suggestion."""

    lrs: list[float]
    losses: list[float]  # raw training loss of each step (NaN/inf kept)
    smoothed: list[float]  # bias-corrected exponential moving average of ``losses``
    lr_low: float
    lr_high: float
    planned_steps: int
    stopped_early: str | None  # why the run ended before ``planned_steps``; None if it did not
    suggestion: Suggestion

    def to_json(self) -> dict[str, Any]:
        """The ``lr_range`` JSON (``TrialRow.lr_range``, ``sweepdoc lr-find --json``):
        non-finite losses as ``null``."""
        s = self.suggestion
        return {
            "lrs": self.lrs,
            "losses": [finite_or_none(v) for v in self.losses],
            "smoothed": [finite_or_none(v) for v in self.smoothed],
            "suggestion": s.lr,
            "rule": s.rule.value if s.rule is not None else None,
            "reason": s.reason,
            "steepest_lr": s.steepest_lr,
            "minimum_lr": s.minimum_lr,
            "lr_low": self.lr_low,
            "lr_high": self.lr_high,
            "steps": len(self.lrs),
            "planned_steps": self.planned_steps,
            "stopped_early": self.stopped_early,
        }


def default_steps(steps_per_epoch: int) -> int:
    """One epoch of steps, within [MIN_DEFAULT_STEPS, MAX_DEFAULT_STEPS]."""
    return min(MAX_DEFAULT_STEPS, max(MIN_DEFAULT_STEPS, steps_per_epoch))


def lr_at_step(step: int, *, lr_low: float, lr_high: float, steps: int) -> float:
    """The exponential ramp: ``lr_low`` at step 0, ``lr_high`` at the last step."""
    if steps <= 1:
        return lr_low
    return float(lr_low * (lr_high / lr_low) ** (step / (steps - 1)))


def smooth(losses: Sequence[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction (as fastai's ``lr_find``): the
    average starts at 0, so each value is divided by ``1 - beta**(i+1)``. A non-finite loss
    makes the rest non-finite, which is what it means for the run."""
    average, out = 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1.0 - beta) * loss
        out.append(average / (1.0 - beta ** (i + 1)))
    return out


def range_test(
    config: RunConfig,
    *,
    lr_low: float,
    lr_high: float,
    max_steps: int | None = None,
    diverge_factor: float = DEFAULT_DIVERGE_FACTOR,
    smoothing: float = DEFAULT_SMOOTHING,
    should_stop: Callable[[], bool] | None = None,
) -> RangeTestResult:
    """Run the range test on *config*'s data and model (its ``optim.lr`` and schedule are
    ignored: the rate is the test's) and suggest a learning rate.

    *max_steps*: optimizer steps from ``lr_low`` to ``lr_high`` (default: ``default_steps``).
    *should_stop*: asked after every step; True ends the run there (a worker shutting down).
    Raises ConfigError for bad arguments, and what ``train`` raises before training starts.
    """
    _check_arguments(lr_low, lr_high, max_steps, diverge_factor, smoothing)
    o = config.optim
    device = resolve_device(o.device)
    torch.manual_seed(o.seed)  # model init and dropout, as in train
    data = prepare_data(config.data, device, channels_last=CHANNELS_LAST)
    try:
        config, model, frozen_backbone, _ = build_network(config, data, device)
        steps_per_epoch = len(batch_bounds(data.train_size, o.batch_size))
        steps = max_steps if max_steps is not None else default_steps(steps_per_epoch)
        pad, flip = augmentation(config, data)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = _make_optimizer(params, config)
        criterion = nn.CrossEntropyLoss(label_smoothing=o.label_smoothing)
        generator = torch.Generator(device=device).manual_seed(o.seed)
        bf16 = uses_bf16(o.precision, device)
        model.train()
        if frozen_backbone:
            model.features.eval()  # a linear probe keeps the backbone's norm statistics
        lrs: list[float] = []
        losses: list[float] = []
        stopped: str | None = None
        average, best = 0.0, math.inf
        while stopped is None and len(lrs) < steps:  # the batches cycle over epochs
            batches = data.train_batches(
                o.batch_size, generator, pad=pad, flip=flip, channels_last=CHANNELS_LAST
            )
            for xb, yb in batches:  # (B, C, H, W), (B,)
                step = len(lrs)
                lr = lr_at_step(step, lr_low=lr_low, lr_high=lr_high, steps=steps)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    logits = model(xb)  # (B, num_classes)
                    loss = criterion(logits.float(), yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if o.grad_clip is not None:
                    nn.utils.clip_grad_norm_(params, o.grad_clip)
                optimizer.step()
                value = float(loss.detach())  # one host sync per step: a short run
                lrs.append(lr)
                losses.append(value)
                average = smoothing * average + (1.0 - smoothing) * value
                smoothed = average / (1.0 - smoothing ** (step + 1))
                stopped = _why_stop(value, smoothed, best, diverge_factor, lr)
                best = min(best, smoothed) if math.isfinite(smoothed) else best
                if stopped is None and should_stop is not None and should_stop():
                    stopped = f"stopped on request after {step + 1} of {steps} steps"
                if stopped is not None or len(lrs) >= steps:
                    break
    finally:
        data.close()
    curve = smooth(losses, smoothing)
    return RangeTestResult(
        lrs=lrs,
        losses=losses,
        smoothed=curve,
        lr_low=lr_low,
        lr_high=lr_high,
        planned_steps=steps,
        stopped_early=stopped,
        suggestion=suggest(lrs, curve, lr_low=lr_low),
    )


def _why_stop(
    loss: float, smoothed: float, best: float, diverge_factor: float, lr: float
) -> str | None:
    if not math.isfinite(loss):
        return f"the loss became non-finite at lr={lr:.3g}"
    if math.isfinite(best) and smoothed > diverge_factor * best:
        return (
            f"diverged at lr={lr:.3g}: the smoothed loss {smoothed:.3g} exceeded "
            f"{diverge_factor:g}x its minimum {best:.3g}"
        )
    return None


def _check_arguments(
    lr_low: float,
    lr_high: float,
    max_steps: int | None,
    diverge_factor: float,
    smoothing: float,
) -> None:
    if not (math.isfinite(lr_low) and lr_low > 0):
        raise ConfigError(f"lr_low: must be a positive number, got {lr_low!r}")
    if not (math.isfinite(lr_high) and lr_high > lr_low):
        raise ConfigError(f"lr_high: must be above lr_low={lr_low:g}, got {lr_high!r}")
    if max_steps is not None and not 2 <= max_steps <= MAX_STEPS:
        raise ConfigError(f"max_steps: must be in [2, {MAX_STEPS}], got {max_steps!r}")
    if not diverge_factor > 1:
        raise ConfigError(f"diverge_factor: must be above 1, got {diverge_factor!r}")
    if not 0 <= smoothing < 1:
        raise ConfigError(f"smoothing: must be in [0, 1), got {smoothing!r}")


def suggest(lrs: Sequence[float], smoothed: Sequence[float], *, lr_low: float) -> Suggestion:
    """Steepest descent or minimum/10 from the smoothed curve (module docstring), in
    [lr_low, the highest rate tried]; the reason names the rule and the numbers behind it."""
    finite = [i for i, v in enumerate(smoothed) if math.isfinite(v)]
    if not finite:
        return Suggestion(
            None, None, f"no finite loss at all, even at lr_low={lr_low:g}: lower lr_low",
            None, None,
        )
    last = finite[-1] + 1  # the finite prefix (a non-finite loss ends the curve)
    low = min(range(last), key=lambda i: smoothed[i])
    minimum_lr = lrs[low]
    tenth = max(lr_low, minimum_lr / 10)
    skip = max(MIN_SKIP_START, math.ceil(SKIP_START_FRACTION * len(lrs)))
    clamp_note = " (clamped to lr_low)" if minimum_lr / 10 < lr_low else ""

    def fallback(why: str, steepest_lr: float | None) -> Suggestion:
        return Suggestion(
            tenth, SuggestionRule.MINIMUM_TENTH,
            f"minimum/10: {why}; a tenth of the rate at the smoothed loss's minimum "
            f"(lr={minimum_lr:.3g}) is {tenth:.3g}{clamp_note}",
            steepest_lr, minimum_lr,
        )

    if low - skip < 2:
        return fallback(
            f"the smoothed loss was lowest after only {low + 1} steps, too early to read a "
            "slope (lr_low may be too high)", None,
        )
    logs = [math.log10(lr) for lr in lrs]
    slopes = [
        (smoothed[i + 1] - smoothed[i]) / (logs[i + 1] - logs[i]) for i in range(skip, low)
    ]
    steep = skip + min(range(len(slopes)), key=lambda k: slopes[k])
    steepest_lr = lrs[steep]
    start = smoothed[skip]
    descent = (start - smoothed[low]) / abs(start) if start else 0.0
    if descent < MIN_DESCENT:
        return fallback(
            f"the curve is too flat to read a slope (the smoothed loss fell only "
            f"{descent:.1%} from step {skip + 1} to its minimum)", steepest_lr,
        )
    if steep == skip:
        return fallback(
            "the loss fell fastest at the first step considered, so the steepest point may "
            "lie below lr_low", steepest_lr,
        )
    return Suggestion(
        steepest_lr, SuggestionRule.STEEPEST,
        f"steepest: the smoothed loss fell fastest at lr={steepest_lr:.3g} "
        f"({slopes[steep - skip]:.3g} per decade) and by {descent:.0%} before its minimum "
        f"at lr={minimum_lr:.3g}, a clear descent",
        steepest_lr, minimum_lr,
    )
