"""Measure once: turn validated curves into every number the verdict is read from.

Two stages, each computed once per diagnosis and passed down (validate → measure → decide →
advise): ``Levels`` is what divergence needs (chance levels, gap-filled curves, the loss's
scale) and is all the per-epoch live check computes; ``Measures`` adds the judged segment of
the LR schedule, smoothed series and trends, and the forecasts, for finished (or cut) runs.
Every quantity is reported in the Evidence, so a user can recompute and check it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from statistics import median

from studies.diagnosis._curves import Curves
from studies.diagnosis._forecast import Bounds, CurveForecast, Direction, forecast
from studies.diagnosis._implied import implied_plan
from studies.diagnosis._plan import Ahead, Plan, Stage, ahead_of, stage_of
from studies.diagnosis._schedule import Schedule, find_schedule
from studies.diagnosis._stats import (
    argmax,
    argmin,
    kendall_tau,
    noise_sigma,
    running_median,
    theil_sen_slope,
)

MIN_SEGMENT = 3
"""The last LR segment is judged alone once it holds this many epochs (else the whole run)."""
# A material accuracy gain, the margin more epochs must buy (_rules.py): a tenth of the error
# left, at least one point — the gain a practitioner would train for. The floor is also the
# movement a validation-accuracy plateau stays within.
MATERIAL_ERROR_SHARE = 0.1
MATERIAL_ACC_FLOOR = 0.01
# A material loss change: a fifth of the loss's level (any scale) — what more epochs must buy
# of the validation loss (_rules.py), and how far the training loss must still fall for
# "training kept fitting" (_overfit.py).
MATERIAL_LOSS_SHARE = 0.2
# Where a plateau is anchored: the median of this many last smoothed values (_plateau).
PLATEAU_ANCHOR = 3

# A loss is on the per-sample cross-entropy scale (so log(num_classes) is its uniform guess)
# when its median over the run is within this factor of log(K): a mean cross-entropy starts
# near log(K) and falls (or, diverged, hovers around it), while a sum-reduced one sits at
# batch-size times that for most of the run.
PER_SAMPLE_FACTOR = 1.5


def filled(values: list[float | None]) -> list[float]:
    """Carry the last finite value over gaps (a missing accuracy is not a divergence sign)."""
    if None not in values:
        return list(values)  # type: ignore[arg-type]  # no None left: all floats
    out: list[float] = []
    first = next((v for v in values if v is not None), 0.0)
    last = first
    for value in values:
        last = value if value is not None else last
        out.append(last)
    return out


def material_acc_gain_at(level: float) -> float:
    """The accuracy gain worth more epochs at *level*: a share of the error left there."""
    return max(MATERIAL_ACC_FLOOR, MATERIAL_ERROR_SHARE * (1.0 - level))


def smoothing_width(epochs: int) -> int:
    """Running-median width: wide enough to drop one bad epoch, narrow enough for short runs."""
    return 3 if epochs < 12 else 5 if epochs < 50 else 7


def window_size(epochs: int) -> int:
    """Epochs at the end of the run over which trends are measured (3 to 12)."""
    return min(epochs, max(3, min(12, round(epochs * 0.3))))


@dataclass(frozen=True)
class Levels:
    """What a run's divergence is judged from: computed once, also after every live epoch."""

    curves: Curves
    chance_acc: float | None
    chance_loss: float | None  # log(K), only when the loss is on the per-sample scale
    train_loss: list[float] | None  # gaps filled (a null loss is judged before filling)
    val_loss: list[float] | None
    train_acc: list[float] | None
    val_acc: list[float] | None

    @property
    def epochs(self) -> int:
        return self.curves.epochs

    @property
    def loss(self) -> list[float] | None:
        """The training loss, else the validation loss."""
        return self.train_loss if self.train_loss is not None else self.val_loss

    @property
    def accuracies(self) -> list[list[float]]:
        return [a for a in (self.train_acc, self.val_acc) if a is not None]

    @cached_property
    def smoothed_train_loss(self) -> list[float] | None:
        """The training loss's running median: one lucky or unlucky epoch does not move it."""
        if self.train_loss is None:
            return None
        return running_median(self.train_loss, smoothing_width(len(self.train_loss)))

    @cached_property
    def lowest_train_loss_epoch(self) -> int | None:
        """Index of the epoch whose smoothed training loss is lowest: where a warm-up was still
        within what the network tolerates. None without a training loss."""
        smooth = self.smoothed_train_loss
        return None if smooth is None else min(range(len(smooth)), key=smooth.__getitem__)


def _fill(values: list[float | None] | None) -> list[float] | None:
    if values is None or all(v is None for v in values):
        return None
    return filled(values)


def measure_levels(curves: Curves) -> Levels:
    """Chance levels and gap-filled curves of *curves*."""
    train_loss, val_loss = _fill(curves.train_loss), _fill(curves.val_loss)
    chance_acc = chance_loss = None
    if curves.num_classes is not None:
        chance_acc = 1.0 / curves.num_classes
        chance = math.log(curves.num_classes)
        typical = [median(loss) for loss in (train_loss, val_loss) if loss is not None]
        # Without any loss, log(K) is still the uniform guess's value, but unused.
        if not typical or min(typical) <= PER_SAMPLE_FACTOR * chance:
            chance_loss = chance
    return Levels(
        curves=curves,
        chance_acc=chance_acc,
        chance_loss=chance_loss,
        train_loss=train_loss,
        val_loss=val_loss,
        train_acc=_fill(curves.train_acc),
        val_acc=_fill(curves.val_acc),
    )


@dataclass(frozen=True)
class Series:
    """One metric over the judged segment: raw values, smoothed values, end-of-run trend."""

    raw: list[float]
    smooth: list[float]
    slope: float  # Theil–Sen slope over the window, per epoch
    tau: float  # Kendall's tau over the window
    noise: float  # sigma of the epoch-to-epoch noise (second half of the segment)

    @classmethod
    def of(cls, raw: list[float], window: int) -> Series:
        tail = raw[-window:]
        return cls(
            raw=raw,
            smooth=running_median(raw, smoothing_width(len(raw))),
            slope=theil_sen_slope(tail),
            tau=kendall_tau(tail),
            noise=noise_sigma(raw[len(raw) // 2 :]),
        )


class Forecasts:
    """Each curve's forecast at the horizon (None: curve not given, or too short).

    The validation forecasts are computed with the measures; the training ones only when a
    rule asks (the underfitting check), and then once: most verdicts never need them, and the
    forecast is the costliest measurement.
    """

    def __init__(self, levels: Levels, start: int, horizon: int) -> None:
        self.levels, self.start, self.horizon = levels, start, horizon
        self.val_acc = self._one(levels.val_acc, Direction.UP)
        self.val_loss = self._one(levels.val_loss, Direction.DOWN)

    def _one(self, values: list[float] | None, direction: Direction) -> CurveForecast | None:
        if values is None:
            return None
        # Accuracies lie in [0, 1]; a loss that never went below zero cannot (sign-aware: a
        # negative log-likelihood has no floor we know of).
        bounds = Bounds(0.0, 1.0) if direction is Direction.UP else _loss_bounds(values)
        return forecast(
            values[self.start :],
            first_epoch=self.start + 1,
            horizon=self.horizon,
            direction=direction,
            bounds=bounds,
        )

    @cached_property
    def train_acc(self) -> CurveForecast | None:
        return self._one(self.levels.train_acc, Direction.UP)

    @cached_property
    def train_loss(self) -> CurveForecast | None:
        return self._one(self.levels.train_loss, Direction.DOWN)


@dataclass(frozen=True)
class Measures:
    """What the rules look at (non-diverged runs with at least 3 epochs)."""

    levels: Levels
    schedule: Schedule
    start: int  # 0-based first epoch of the judged segment
    window: int
    train_loss: Series | None
    val_loss: Series | None
    train_acc: Series | None
    val_acc: Series | None
    best_index: int  # 0-based best epoch of the segment by the val metric (acc preferred)
    gap: list[float] | None  # train_acc - val_acc, or val_loss - train_loss (smoothed)
    gap_trend: float | None
    val_loss_rise: float | None
    val_loss_rise_rel: float | None
    val_acc_drop: float | None
    plateau_epochs: int | None
    forecasts: Forecasts
    ahead: Ahead | None  # what the run's plan still holds (None: no plan, or none left)
    implied_epochs: int | None  # the end a recorded LR decay implies, for a run with no plan

    @property
    def stage(self) -> Stage:
        """Where the run stands: in its given plan; else, from its recorded LR, in progress
        towards the end its decay implies, or finished once its LR is annealed (≤ 10% of its
        peak: the schedule has run its course); else unknown. Confidence is calibrated per
        stage."""
        if self.levels.curves.plan is not None:
            return stage_of(self.levels.curves.plan, self.levels.epochs)
        if self.implied_epochs is not None:
            return Stage.IN_PROGRESS
        return Stage.FINISHED if self.schedule.annealed else Stage.UNKNOWN

    @property
    def epochs(self) -> int:
        """Epochs in the judged segment."""
        return self.levels.epochs - self.start

    @property
    def chance_acc(self) -> float | None:
        return self.levels.chance_acc

    @property
    def chance_loss(self) -> float | None:
        return self.levels.chance_loss

    @property
    def val_metric(self) -> Series | None:
        return self.val_acc or self.val_loss


def _plateau(series: Series, tolerance: float) -> int:
    """Epochs, counted back from the end, whose smoothed value stays near where the run
    ends: the median of its last PLATEAU_ANCHOR smoothed values. Not the last one alone: on
    a noisy curve that sits at one edge of the band as often as not, and a flat stretch
    then ends at the first epoch on the other edge."""
    final = median(series.smooth[-PLATEAU_ANCHOR:])
    count = 0
    for value in reversed(series.smooth):
        if abs(value - final) > tolerance:
            break
        count += 1
    return count


def _loss_bounds(values: list[float]) -> Bounds:
    return Bounds(low=0.0) if min(values) >= 0.0 else Bounds()


def default_horizon(plan: Plan | None, epochs: int) -> int:
    """Where the forecast looks by default: the planned end of a run with epochs left, else
    twice the epochs so far."""
    if plan is not None and plan.epochs > epochs:
        return plan.epochs
    return 2 * epochs


def measure(levels: Levels, *, horizon: int | None = None) -> Measures:
    """Every rule input from *levels* (a run with only finite losses and ≥ 3 epochs).

    *horizon* (a 1-based epoch) is where the forecasts look; default: the planned end of a
    run with epochs left (its own plan, or the one its LR decay implies), else twice the
    epochs so far.
    """
    schedule = find_schedule(levels.curves.lr)
    start = schedule.last_start
    if levels.epochs - start < MIN_SEGMENT:
        start = 0
    epochs = levels.epochs - start
    window = window_size(epochs)

    def series(values: list[float] | None) -> Series | None:
        return None if values is None else Series.of(values[start:], window)

    train_loss, val_loss = series(levels.train_loss), series(levels.val_loss)
    train_acc, val_acc = series(levels.train_acc), series(levels.val_acc)

    if val_acc is not None:
        best_index = argmax(val_acc.raw)
    elif val_loss is not None:
        best_index = argmin(val_loss.raw)
    else:
        best_index = epochs - 1

    gap: list[float] | None = None
    if train_acc is not None and val_acc is not None:
        gap = [t - v for t, v in zip(train_acc.smooth, val_acc.smooth, strict=True)]
    elif train_loss is not None and val_loss is not None:
        gap = [v - t for t, v in zip(train_loss.smooth, val_loss.smooth, strict=True)]
    gap_trend = None if gap is None else theil_sen_slope(gap[-window:])

    rise = rise_rel = None
    if val_loss is not None:
        lowest = argmin(val_loss.smooth)
        rise = val_loss.smooth[-1] - val_loss.smooth[lowest]
        # Relative to how far the loss fell since the run began (not just in this segment: a
        # step decay's segment starts near its minimum, and its tiny drop would make any
        # wiggle a large relative rise): a rise of 0.02 after falling from 2.3 to 0.05 is the
        # usual late-training overconfidence, not overfitting.
        before = levels.val_loss[: start + 1] if levels.val_loss is not None else []
        drop = max([*before, *val_loss.smooth[: lowest + 1]]) - val_loss.smooth[lowest]
        rise_rel = rise / drop if drop > 0 else None

    acc_drop = None if val_acc is None else max(val_acc.smooth) - val_acc.smooth[-1]

    plateau = None
    if val_acc is not None:
        # Flat: within its noise of the last epoch, or within a point (the smallest gain
        # worth more epochs): an annealed run's frozen tail has almost no noise, and a drift
        # of half a point over 60 epochs is no progress. Not the whole material margin: at
        # 50% accuracy that is 5 points, and a run climbing 4 points in 4 epochs is not flat.
        tolerance = max(3 * val_acc.noise, MATERIAL_ACC_FLOOR)
        plateau = _plateau(val_acc, tolerance)
    elif val_loss is not None:
        span = max(val_loss.smooth) - min(val_loss.smooth)
        plateau = _plateau(val_loss, max(3 * val_loss.noise, 0.02 * span))

    # Without a plan, a cosine or linear decay in the recorded LR implies one (_implied.py).
    plan = levels.curves.plan or implied_plan(levels.curves.lr, schedule)
    ahead = ahead_of(plan, levels.epochs)
    fit_horizon = max(horizon or default_horizon(plan, levels.epochs), levels.epochs)
    return Measures(
        levels=levels,
        schedule=schedule,
        start=start,
        window=window,
        train_loss=train_loss,
        val_loss=val_loss,
        train_acc=train_acc,
        val_acc=val_acc,
        best_index=best_index,
        gap=gap,
        gap_trend=gap_trend,
        val_loss_rise=rise,
        val_loss_rise_rel=rise_rel,
        val_acc_drop=acc_drop,
        plateau_epochs=plateau,
        forecasts=Forecasts(levels, start, fit_horizon),
        ahead=ahead,
        implied_epochs=None if levels.curves.plan is not None or plan is None else plan.epochs,
    )
