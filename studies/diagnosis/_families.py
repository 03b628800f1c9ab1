"""The learning-curve families of Domhan, Springenberg and Hutter (IJCAI 2015), fitted by
variable projection: each is ``y(x) = c + a·h(x; θ)`` with ``h → 0``, so for a shape ``θ`` on a
fixed grid the fit is linear least squares in ``(c, a)``; every family, grid point and
bootstrap replicate is fitted with a few matrix products (used by _forecast.py).

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
on a curve that only wiggles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]


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
class Basis:
    """Every family's grid of shapes evaluated at the fit points and at the future epochs."""

    family_of: npt.NDArray[np.int_]  # (Θ,) index into _FAMILIES of each grid point
    at_points: Array  # (Θ, n)
    at_future: Array  # (Θ, F) the epochs after the last, up to the horizon (its last column)
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


def basis(x: Array, future: Array) -> Basis:
    span = float(x[-1])
    points = np.concatenate([x, future])
    blocks, owners = _shapes(points, span)
    everything = np.vstack(blocks)
    # Flush what underflowed into subnormal numbers (exp(-720) and the like) to zero: they
    # change no fit, and arithmetic on subnormals is tens of times slower on x86.
    everything[np.abs(everything) < 1e-30] = 0.0
    family_of = np.asarray(owners)
    shape_parameters = np.array([_SHAPE_PARAMETERS[_FAMILIES[i]] for i in owners], float)
    n = len(x)
    return Basis(family_of, everything[:, :n], everything[:, n:], shape_parameters)


@dataclass(frozen=True)
class Fits:
    """The ensemble fitted to each of B curves: its predictions and asymptote."""

    future: Array  # (B, F) at the future epochs; the last column is the horizon
    asymptote: Array  # (B,)
    fitted: Array  # (B, n) the ensemble's fitted curve; (B, 1), its last point, if not asked
    top_family: list[Family]


def fit(
    values: Array, basis: Basis, direction: Direction, bounds: Bounds, *, whole_curve: bool
) -> Fits:
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
    predictions = np.zeros((b, families + 1, basis.at_future.shape[1]))
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
        predictions[:, index] = (
            level[rows, best][:, None] + slope[rows, best][:, None] * basis.at_future[best]
        )
        asymptotes[:, index] = level[rows, best]
    # The flat model: the mean, one parameter.
    bic[:, families] = n * np.log((syy + floor) / n) + math.log(n)
    predictions[:, families] = y_mean[:, None]
    asymptotes[:, families] = y_mean

    relative = bic - bic.min(axis=1, keepdims=True)
    weights = np.where(np.isfinite(relative), np.exp(-0.5 * relative), 0.0)
    weights /= weights.sum(axis=1, keepdims=True)
    future = np.einsum("bf,bft->bt", weights, predictions)
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
    return Fits(future, asymptote, fitted, top)
