"""Forecast a learning curve: where will this metric be at a later epoch, and how sure is that?

The parametric learning-curve families of Domhan, Springenberg and Hutter (IJCAI 2015), as an
ensemble weighted by fit, with a parametric bootstrap for the uncertainty. Every family used
here saturates and can be written ``y(x) = c + a·h(x; θ)`` with ``h → 0`` as ``x → ∞``, so
``c`` is the asymptote, and for a fixed shape ``θ`` the fit is linear least squares in
``(c, a)``. The shape parameters are searched on a fixed grid (variable projection), which
fits every family, every grid point and every bootstrap replicate with a few matrix products:
no iterative optimiser, so no failed convergence and no scipy, and a 1,000-epoch run
forecasts in about a millisecond.

The families and their fit live in _families.py.

Uncertainty: the ensemble's fitted curve plus Gaussian noise of the run's own size (the
larger of the residuals, corrected for the fitted parameters, and the epoch-to-epoch noise),
refitted BOOTSTRAP times; the spread of the refitted ensembles' predictions is the interval,
and the share of replicates that clear a margin is the probability of that gain. The random
generator is seeded: the same curves give the same forecast.

Gains are counted from the best the run has shown so far (what a practitioner's best
checkpoint holds), and read at the horizon, at the asymptote, or at the best epoch that each
replicate's future path shows once the run's own epoch-to-epoch noise is added (``GainBy``),
drawn from its later residuals so that it has their shape (a loss on a floor spikes up; it
does not dip below the floor as often).
The forecast never starts better than where the run is (see ``forecast``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from studies.diagnosis._families import Bounds, Direction, Family, basis, fit

__all__ = ["Bounds", "CurveForecast", "Direction", "Family", "GainBy", "forecast"]
from studies.diagnosis._stats import noise_sigma, running_median

Array = npt.NDArray[np.float64]

BOOTSTRAP: Final = 64
# Long runs are thinned to this many evenly spaced points (always keeping the last): the
# shape of a learning curve needs far fewer points than a 1,000-epoch run has.
MAX_FIT_POINTS: Final = 120
# The interval reported: the 5th to 95th percentile of the bootstrap predictions.
INTERVAL: Final = (5.0, 95.0)
# A curve must have moved this many noise sigmas before its pace means anything.
PACE_NOISE: Final = 3.0
# The best so far is read off a running median this wide: the width the labeled set's truth
# smooths a curve with before it asks whether the rest of a run beat it (bench/diagnoser).
BEST_SMOOTHING: Final = 3
# The share of the fit points at the end that say where the run is now.
END_SHARE: Final = 0.3
# The future path is drawn at most at this many epochs (evenly spaced) up to the horizon.
MAX_FUTURE_POINTS: Final = 256
# A curve's noise is drawn from its own residuals (their shape) from this many on.
MIN_SHAPE_RESIDUALS: Final = 5
_SEED: Final = 20150725  # IJCAI 2015 (any fixed seed: only reproducibility matters)


class GainBy(StrEnum):
    """Where a forecast gain is read."""

    HORIZON = "horizon"  # the mean curve at the horizon
    EVENTUALLY = "eventually"  # the mean curve's asymptote
    SHOWN = "shown"  # the best epoch up to the horizon, the run's own noise included


@dataclass(frozen=True)
class CurveForecast:
    """A metric's forecast at *horizon* (a 1-based epoch) from the fitted ensemble."""

    first: float  # the ensemble's fitted value at the segment's first epoch
    sigma: float  # the epoch-to-epoch noise the bootstrap drew
    now: float  # the ensemble's fitted value at the last epoch
    at_horizon: float
    low: float
    high: float
    asymptote: float
    horizon: int
    family: Family  # the family with the most weight
    best: float  # the best of the curve's 3-epoch running median so far: what a gain must beat
    gains: Array  # (BOOTSTRAP,) each replicate's improvement on *best* by the horizon
    eventual_gains: Array  # (BOOTSTRAP,) ... and by its asymptote
    shown_gains: Array  # (BOOTSTRAP,) ... by the best epochs up to the horizon will show

    @property
    def pace(self) -> float:
        """Forecast gain by the horizon over the gain so far (0: settled; ~1: as fast as
        ever, per epoch ahead as per epoch behind). Scale-free. A curve that has not moved
        beyond its noise (PACE_NOISE sigmas) has no pace to keep: 0."""
        so_far = abs(self.now - self.first)
        if so_far <= PACE_NOISE * self.sigma:
            return 0.0
        return abs(self.at_horizon - self.now) / so_far

    def probability_of_gain(self, margin: float, *, by: GainBy = GainBy.HORIZON) -> float:
        """Share of bootstrap replicates that improve on the best so far by at least
        *margin*, read as *by* says."""
        gains = {
            GainBy.HORIZON: self.gains,
            GainBy.EVENTUALLY: self.eventual_gains,
            GainBy.SHOWN: self.shown_gains,
        }[by]
        return float(np.mean(gains >= margin))


def forecast(
    values: list[float],
    *,
    first_epoch: int,
    horizon: int,
    direction: Direction,
    bounds: Bounds,
) -> CurveForecast | None:
    """Forecast *values* (epochs first_epoch, first_epoch + 1, ...; 1-based) at *horizon*.

    None for fewer than 3 points (no shape to fit).
    """
    n = len(values)
    if n < 3:
        return None
    x_all = np.arange(1, n + 1, dtype=float)
    raw = np.asarray(values, dtype=float)
    # Fit in standard units (centred, scaled by the range): the same arithmetic for a loss of
    # 1e-4 and one of 1e6, with no overflow in the sums of squares.
    with np.errstate(all="ignore"):
        centre = float(np.median(raw))
        scale = float(np.max(np.abs(raw - centre)))
    if not (math.isfinite(centre) and math.isfinite(scale)):
        return None  # values near the float limits (1e300): nothing sensible to extrapolate
    scale = scale if scale > 0 else 1.0
    y_all = (raw - centre) / scale
    low_bound = (bounds.low - centre) / scale if math.isfinite(bounds.low) else -math.inf
    high_bound = (bounds.high - centre) / scale if math.isfinite(bounds.high) else math.inf
    unit_bounds = Bounds(low_bound, high_bound)
    if n > MAX_FIT_POINTS:
        keep = np.unique(np.round(np.linspace(0, n - 1, MAX_FIT_POINTS)).astype(int))
        x, y = x_all[keep], y_all[keep]
    else:
        x, y = x_all, y_all
    horizon_x = float(horizon - first_epoch + 1)
    future = _future_points(float(n), horizon_x)
    grid = basis(x, future)
    fitted_ensemble = fit(y[None, :], grid, direction, unit_bounds, whole_curve=True)
    fitted = fitted_ensemble.fitted[0]
    residual = y - fitted
    degrees = max(1, len(y) - 3)
    rms = math.sqrt(float(residual @ residual) / degrees)
    sigma = max(rms, noise_sigma(y_all.tolist()), 1e-6)
    rng = np.random.default_rng(_SEED)
    replicates = fitted[None, :] + rng.normal(0.0, sigma, size=(BOOTSTRAP, len(y)))
    boot = fit(replicates, grid, direction, unit_bounds, whole_curve=False)
    sign = 1.0 if direction is Direction.UP else -1.0
    # The forecast never starts better than where the run is: when the ensemble's fitted end
    # lies on the hopeful side of the run's recent epochs (a fit pulled by the early fast
    # drop sits below a plateau's level), it is moved back to them. The median residual over
    # the end window says where; the other side (a fit lagging a curve that still improves)
    # is left alone, so the correction can only make a forecast more modest.
    offset = float(np.median(residual[-_end_window(len(y)) :]))
    offset = offset if sign * offset < 0.0 else 0.0
    at_future = boot.future + offset  # (B, F)
    low, high = np.percentile(at_future[:, -1], INTERVAL)

    def original(value: float) -> float:
        return centre + scale * float(value)

    def originals(units: Array) -> Array:
        return centre + scale * units

    # Gains are counted from the best the run has shown so far (its 3-epoch running median,
    # so one lucky epoch is not the best), not from the fitted curve's last point: more
    # epochs pay only if they beat the checkpoint the user already has, and a noisy curve's
    # fitted "now" can sit well above (or below) the level it has already reached.
    smooth = running_median(values, BEST_SMOOTHING)
    best = max(smooth) if direction is Direction.UP else min(smooth)
    # What the remaining epochs will SHOW: each replicate's forecast path plus the run's own
    # epoch-to-epoch noise, smoothed as the best so far was, and its best point. A noisy run
    # still drifting shows a better checkpoint than its mean curve's end; a settled one
    # shows none beyond its noise.
    if future[-1] > n:
        paths = at_future + _epoch_noise_draws(residual, y_all[n // 2 :], at_future.shape, rng)
        shown = _running_median3(paths)
        best_shown = shown.max(axis=1) if direction is Direction.UP else shown.min(axis=1)
        shown_gains = sign * (originals(best_shown) - best)
    else:
        shown_gains = np.full(BOOTSTRAP, -math.inf)  # no epochs left to show anything
    return CurveForecast(
        first=original(fitted[0]),
        sigma=scale * sigma,
        now=original(fitted[-1] + offset),
        at_horizon=original(fitted_ensemble.future[0, -1] + offset),
        low=original(low),
        high=original(high),
        asymptote=original(fitted_ensemble.asymptote[0] + offset),
        horizon=horizon,
        family=fitted_ensemble.top_family[0],
        best=best,
        gains=sign * (originals(at_future[:, -1]) - best),
        eventual_gains=sign * (originals(boot.asymptote + offset) - best),
        shown_gains=shown_gains,
    )


def _epoch_noise_draws(
    residual: Array, later: Array, shape: tuple[int, ...], rng: np.random.Generator
) -> Array:
    """The noise a future epoch adds to the forecast path, drawn from the run's own later
    residuals about the fit (centred, resampled): their size and their SHAPE. A loss near 0
    is not Gaussian about its mean: it sits on a floor and spikes up (a 2-class net at
    0.004-0.005 with epochs at 0.012-0.023), and symmetric noise about a mean the spikes
    pulled up draws epochs far below any the run ever showed (even below 0), a "gain" it could
    never show. Where too few residuals say what the noise is like: Gaussian, of the noise the
    curve has now (*later*, its later half: the early epochs' curvature is not noise), as
    Series.noise in _measure.py measures it.
    """
    tail = residual[len(residual) // 2 :]
    if len(tail) < MIN_SHAPE_RESIDUALS:
        return rng.normal(0.0, noise_sigma(later.tolist()), size=shape)
    draws: Array = rng.choice(tail - tail.mean(), size=shape)
    return draws


def _end_window(points: int) -> int:
    """The fit points at the end whose residuals say where the run is now (30%, at least 3:
    the end window of _measure.window_size)."""
    return max(3, round(END_SHARE * points))


def _future_points(last: float, horizon: float) -> Array:
    """The epochs after *last* up to *horizon* (at most MAX_FUTURE_POINTS of them, evenly
    spaced, the horizon always kept); just *last* when no epoch is left."""
    if horizon <= last:
        return np.array([last])
    count = int(horizon - last)
    if count <= MAX_FUTURE_POINTS:
        return np.arange(last + 1.0, horizon + 1.0)
    return np.unique(np.round(np.linspace(last + 1.0, horizon, MAX_FUTURE_POINTS)))


def _running_median3(paths: Array) -> Array:
    """The centred running median of 3 along each row (the two ends: the mean of two)."""
    if paths.shape[1] < 3:
        means: Array = paths.mean(axis=1, keepdims=True)
        return means
    a, b, c = paths[:, :-2], paths[:, 1:-1], paths[:, 2:]
    middle = a + b + c - np.maximum(np.maximum(a, b), c) - np.minimum(np.minimum(a, b), c)
    first = (paths[:, :1] + paths[:, 1:2]) / 2
    last = (paths[:, -2:-1] + paths[:, -1:]) / 2
    out: Array = np.concatenate([first, middle, last], axis=1)
    return out
