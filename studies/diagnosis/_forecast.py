"""Forecast a learning curve: where will this metric be at a later epoch, and how sure is that?

The parametric learning-curve families of Domhan, Springenberg and Hutter (IJCAI 2015), as an
ensemble weighted by fit, with a parametric bootstrap for the uncertainty. Every family used
here saturates and can be written ``y(x) = c + a·h(x; θ)`` with ``h → 0`` as ``x → ∞``, so
``c`` is the asymptote, and for a fixed shape ``θ`` the fit is linear least squares in
``(c, a)``. The shape parameters are searched on a fixed grid (variable projection), which
fits every family, every grid point and every bootstrap replicate with a few matrix products:
no iterative optimiser, so no failed convergence and no scipy, and a 1,000-epoch run
forecasts in about a millisecond.

Families (x = epochs since the segment began, 1-based):

- ``pow3``:    h = x^-α                      (Domhan's pow3: c − a·x^-α)
- ``pow4``:    h = (x + b)^-α                (pow4)
- ``exp3``:    h = exp(−x/τ)                 (exp3; exp4 with δ = 1)
- ``weibull``: h = exp(−(x/τ)^δ)             (Weibull, Janoschek and exp4: c − e^b·e^(−a·x^δ))
- ``mmf``:     h = 1 / (1 + (x/τ)^δ)         (MMF; log-power is MMF with c = 0)
- ``ilog2``:   h = 1 / log(x + 1)            (ilog2)
- ``flat``:    y = c                         (no change: the null model every fit must beat)

Vapor pressure (exp(a + b/x + c·log x)) grows without bound unless c = 0, where it is exp3 in
1/x; it is left out because a curve that never saturates forecasts any gain at all.

Weights: each family's best grid point, weighted by its BIC (n·log(SSE/n) + k·log n), so a
family with an extra shape parameter must fit clearly better to win, and the flat model wins
on a curve that only wiggles. Uncertainty: the ensemble's fitted curve plus Gaussian noise of
the run's own size (the larger of the residuals, corrected for the fitted parameters, and the
epoch-to-epoch noise), refitted BOOTSTRAP times; the spread of the refitted ensembles'
predictions is the interval, and the share of replicates that clear a margin is the
probability of that gain. The random generator is seeded: the same curves give the same
forecast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from studies.diagnosis._stats import noise_sigma

Array = npt.NDArray[np.float64]

BOOTSTRAP: Final = 64
# Long runs are thinned to this many evenly spaced points (always keeping the last): the
# shape of a learning curve needs far fewer points than a 1,000-epoch run has.
MAX_FIT_POINTS: Final = 120
# The interval reported: the 5th to 95th percentile of the bootstrap predictions.
INTERVAL: Final = (5.0, 95.0)
# A curve must have moved this many noise sigmas before its pace means anything.
PACE_NOISE: Final = 3.0
_SEED: Final = 20150725  # IJCAI 2015 (any fixed seed: only reproducibility matters)


class Family(StrEnum):
    """A parametric learning-curve family (Domhan et al. 2015)."""

    POW3 = "pow3"
    POW4 = "pow4"
    EXP3 = "exp3"
    WEIBULL = "weibull"
    MMF = "mmf"
    ILOG2 = "ilog2"
    FLAT = "flat"


class Direction(StrEnum):
    """Which way the metric improves."""

    UP = "up"  # accuracies
    DOWN = "down"  # losses


@dataclass(frozen=True)
class Bounds:
    """Where the asymptote may lie (an accuracy cannot pass 1; a cross-entropy not 0)."""

    low: float = -math.inf
    high: float = math.inf


@dataclass(frozen=True)
class _Basis:
    """Every family's grid of shapes evaluated at the fit points, the horizon and now."""

    family_of: npt.NDArray[np.int_]  # (Θ,) index into _FAMILIES of each grid point
    at_points: Array  # (Θ, n)
    at_horizon: Array  # (Θ,)
    shape_parameters: Array  # (Θ,) shape parameters of the grid point's family (for BIC)


_FAMILIES: Final = (
    Family.POW3,
    Family.POW4,
    Family.EXP3,
    Family.WEIBULL,
    Family.MMF,
    Family.ILOG2,
)
_SHAPE_PARAMETERS: Final = {
    Family.POW3: 1,
    Family.POW4: 2,
    Family.EXP3: 1,
    Family.WEIBULL: 2,
    Family.MMF: 2,
    Family.ILOG2: 0,
}
_EXPONENTS: Final = np.geomspace(0.05, 4.0, 16)
_DELTAS: Final = np.array([0.5, 0.75, 1.5, 3.0])
_OFFSETS: Final = np.array([0.5, 2.0, 5.0, 10.0, 30.0])


def _shapes(x: Array, span: float) -> tuple[list[Array], list[int]]:
    """Each family's h(x; θ) over its grid, as a (θ, len(x)) array, and the family index."""
    taus = np.geomspace(0.3, 20.0 * span, 16)
    blocks: list[Array] = []
    owners: list[int] = []

    def add(family: Family, block: Array) -> None:
        blocks.append(block)
        owners.extend([_FAMILIES.index(family)] * block.shape[0])

    add(Family.POW3, x[None, :] ** -_EXPONENTS[:, None])
    offsets, exponents = np.meshgrid(_OFFSETS, _EXPONENTS[::2], indexing="ij")
    add(
        Family.POW4,
        (x[None, :] + offsets.reshape(-1, 1)) ** -exponents.reshape(-1, 1),
    )
    add(Family.EXP3, np.exp(-x[None, :] / taus[:, None]))
    grid_tau, grid_delta = np.meshgrid(taus, _DELTAS, indexing="ij")
    scaled = x[None, :] / grid_tau.reshape(-1, 1)
    add(Family.WEIBULL, np.exp(-(scaled ** grid_delta.reshape(-1, 1))))
    add(Family.MMF, 1.0 / (1.0 + scaled ** grid_delta.reshape(-1, 1)))
    add(Family.ILOG2, 1.0 / np.log(x[None, :] + 1.0))
    return blocks, owners


def _basis(x: Array, horizon: float) -> _Basis:
    span = float(x[-1])
    points = np.append(x, horizon)
    blocks, owners = _shapes(points, span)
    everything = np.vstack(blocks)
    # Flush what underflowed into subnormal numbers (exp(-720) and the like) to zero: they
    # change no fit, and arithmetic on subnormals is tens of times slower on x86.
    everything[np.abs(everything) < 1e-30] = 0.0
    family_of = np.asarray(owners)
    shape_parameters = np.array([_SHAPE_PARAMETERS[_FAMILIES[i]] for i in owners], float)
    return _Basis(family_of, everything[:, :-1], everything[:, -1], shape_parameters)


@dataclass(frozen=True)
class _Fits:
    """The ensemble fitted to each of B curves: predictions and asymptotes, (B,) each."""

    at_horizon: Array
    asymptote: Array
    fitted: Array  # (B, n) the ensemble's fitted curve; (B, 1), its last point, if not asked
    top_family: list[Family]


def _fit(
    values: Array, basis: _Basis, direction: Direction, bounds: Bounds, *, whole_curve: bool
) -> _Fits:
    """Fit every family to each row of *values* (B, n); the BIC-weighted ensemble per row.

    The fitted curve is evaluated at every point only with *whole_curve* (the original fit,
    for its residuals); the bootstrap replicates need only its last point.
    """
    b, n = values.shape
    h = basis.at_points
    h_mean = h.mean(axis=1)
    centred = h - h_mean[:, None]
    sxx = np.einsum("tn,tn->t", centred, centred)
    usable = sxx > 1e-12
    sxx = np.where(usable, sxx, 1.0)
    y_mean = values.mean(axis=1)
    y_centred = values - y_mean[:, None]
    syy = np.einsum("bn,bn->b", y_centred, y_centred)
    # einsum, not a BLAS matmul: these products are small, and a multi-threaded BLAS on a
    # busy machine spends ~20 ms synchronising its threads for 0.03 ms of arithmetic.
    sxy = np.einsum("bn,tn->bt", y_centred, centred)  # (B, Θ)
    slope = sxy / sxx
    level = y_mean[:, None] - slope * h_mean[None, :]
    sse = np.maximum(syy[:, None] - sxy * sxy / sxx, 0.0)
    # The curve must improve towards an asymptote within bounds (h falls as x grows).
    improving = slope < 0 if direction is Direction.UP else slope > 0
    valid = improving & usable[None, :] & (level >= bounds.low) & (level <= bounds.high)
    sse = np.where(valid, sse, np.inf)

    floor = 1e-12 * max(1.0, float(np.max(np.abs(values))) ** 2) * n
    families = len(_FAMILIES)
    bic = np.full((b, families + 1), np.inf)
    predictions = np.zeros((b, families + 1))
    asymptotes = np.zeros((b, families + 1))
    chosen = np.zeros((b, families), dtype=int)
    rows = np.arange(b)
    for index in range(families):
        columns = np.flatnonzero(basis.family_of == index)
        best = columns[np.argmin(sse[:, columns], axis=1)]
        chosen[:, index] = best
        best_sse = sse[rows, best]
        k = 2 + basis.shape_parameters[best]
        bic[:, index] = n * np.log((best_sse + floor) / n) + k * math.log(n)
        predictions[:, index] = level[rows, best] + slope[rows, best] * basis.at_horizon[best]
        asymptotes[:, index] = level[rows, best]
    # The flat model: the mean, one parameter.
    bic[:, families] = n * np.log((syy + floor) / n) + math.log(n)
    predictions[:, families] = y_mean
    asymptotes[:, families] = y_mean

    relative = bic - bic.min(axis=1, keepdims=True)
    weights = np.where(np.isfinite(relative), np.exp(-0.5 * relative), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    at_horizon = (weights * predictions).sum(axis=1)
    asymptote = (weights * asymptotes).sum(axis=1)

    points = h if whole_curve else h[:, -1:]
    fitted = weights[:, families, None] * y_mean[:, None]
    for index in range(families):
        best = chosen[:, index]
        curve = level[rows, best][:, None] + slope[rows, best][:, None] * points[best]
        w = weights[:, index][:, None]
        fitted = fitted + np.where(w > 0, w * curve, 0.0)
    order = [*_FAMILIES, Family.FLAT]
    top = [order[i] for i in np.argmax(weights, axis=1)]
    return _Fits(at_horizon, asymptote, fitted, top)


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
    gains: Array  # (BOOTSTRAP,) each replicate's improvement from its own now to the horizon
    eventual_gains: Array  # (BOOTSTRAP,) ... and to its asymptote

    @property
    def pace(self) -> float:
        """Forecast gain by the horizon over the gain so far (0: settled; ~1: as fast as
        ever, per epoch ahead as per epoch behind). Scale-free. A curve that has not moved
        beyond its noise (PACE_NOISE sigmas) has no pace to keep: 0."""
        so_far = abs(self.now - self.first)
        if so_far <= PACE_NOISE * self.sigma:
            return 0.0
        return abs(self.at_horizon - self.now) / so_far

    def probability_of_gain(self, margin: float, *, eventually: bool = False) -> float:
        """Share of bootstrap replicates that improve by at least *margin* by the horizon
        (or, *eventually*, by the time the curve levels off)."""
        gains = self.eventual_gains if eventually else self.gains
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
    basis = _basis(x, max(horizon_x, float(x[-1])))
    fit = _fit(y[None, :], basis, direction, unit_bounds, whole_curve=True)
    fitted = fit.fitted[0]
    residual = y - fitted
    degrees = max(1, len(y) - 3)
    rms = math.sqrt(float(residual @ residual) / degrees)
    sigma = max(rms, noise_sigma(y_all.tolist()), 1e-6)
    rng = np.random.default_rng(_SEED)
    replicates = fitted[None, :] + rng.normal(0.0, sigma, size=(BOOTSTRAP, len(y)))
    boot = _fit(replicates, basis, direction, unit_bounds, whole_curve=False)
    low, high = np.percentile(boot.at_horizon, INTERVAL)
    sign = 1.0 if direction is Direction.UP else -1.0

    def original(value: float) -> float:
        return centre + scale * float(value)

    return CurveForecast(
        first=original(fitted[0]),
        sigma=scale * sigma,
        now=original(fitted[-1]),
        at_horizon=original(fit.at_horizon[0]),
        low=original(low),
        high=original(high),
        asymptote=original(fit.asymptote[0]),
        horizon=horizon,
        family=fit.top_family[0],
        gains=sign * scale * (boot.at_horizon - boot.fitted[:, -1]),
        eventual_gains=sign * scale * (boot.asymptote - boot.fitted[:, -1]),
    )
