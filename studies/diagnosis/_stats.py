"""Robust statistics over short, noisy per-epoch series.

Epoch curves are short (3 to a few hundred points), noisy and sometimes hold outliers (a
single bad validation epoch), so everything here is median based: running medians to smooth,
Theil–Sen slopes and Kendall's tau for trends, and a noise scale from second differences,
which a steady trend does not inflate.
"""

import math
from collections.abc import Sequence
from statistics import median

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# A Gaussian's sigma is 1.4826 times its median absolute deviation.
_MAD_TO_SIGMA = 1.4826
# Pairwise statistics are quadratic: cap the number of points they look at.
_MAX_PAIRWISE_POINTS = 40


def running_median(values: Sequence[float], width: int) -> list[float]:
    """Centred running median; the window shrinks (one-sided) at both ends.

    The interior is one numpy median over a sliding window view (it runs over every epoch of
    every series: 1,000 epochs must diagnose in a few milliseconds); the few edge points,
    whose windows shrink, are sorted slices.
    """
    half = width // 2
    n = len(values)

    def at(i: int) -> float:
        window = sorted(values[max(0, i - half) : i + half + 1])
        middle = len(window) // 2
        return window[middle] if len(window) % 2 else (window[middle - 1] + window[middle]) / 2

    if n <= 2 * half + 1:
        return [at(i) for i in range(n)]
    windows = sliding_window_view(np.asarray(values, dtype=float), 2 * half + 1)
    interior: list[float] = np.median(windows, axis=1).tolist()
    return [at(i) for i in range(half)] + interior + [at(i) for i in range(n - half, n)]


def _thinned(values: Sequence[float]) -> tuple[list[float], float]:
    """At most _MAX_PAIRWISE_POINTS evenly spaced points and the spacing between them."""
    n = len(values)
    if n <= _MAX_PAIRWISE_POINTS:
        return list(values), 1.0
    step = (n - 1) / (_MAX_PAIRWISE_POINTS - 1)
    return [values[round(i * step)] for i in range(_MAX_PAIRWISE_POINTS)], step


def theil_sen_slope(values: Sequence[float]) -> float:
    """Median of the pairwise slopes (per index step); 0 for fewer than two points."""
    points, step = _thinned(values)
    slopes = [
        (points[j] - points[i]) / ((j - i) * step)
        for i in range(len(points))
        for j in range(i + 1, len(points))
    ]
    return median(slopes) if slopes else 0.0


def kendall_tau(values: Sequence[float]) -> float:
    """Kendall's tau of the values against their index: +1 always rising, -1 always falling."""
    points, _ = _thinned(values)
    total = 0
    pairs = 0
    for i in range(len(points)):
        for j in range(i + 1, len(points)):
            pairs += 1
            difference = points[j] - points[i]
            total += (difference > 0) - (difference < 0)
    return total / pairs if pairs else 0.0


def trend_p_value(values: Sequence[float], *, rising: bool) -> float:
    """One-sided Mann–Kendall p-value: how likely so steady a rise (or fall) is by chance.

    Kendall's tau alone does not say how much a few points can show: three noisy epochs are
    in rising order one time in six. The normal approximation of the statistic S (variance
    n(n−1)(2n+5)/18, continuity-corrected) makes a trend count only where its order would be
    rare by chance, whatever the window's length.
    """
    points, _ = _thinned(values)
    n = len(points)
    if n < 3:
        return 1.0
    s = kendall_tau(points) * n * (n - 1) / 2
    s = s if rising else -s
    z = (s - 1.0) / math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def noise_sigma(values: Sequence[float]) -> float:
    """Epoch-to-epoch noise: MAD of second differences, scaled to one point's sigma."""
    if len(values) < 3:
        return 0.0
    # numpy, not a Python loop: it runs on every curve and every forecast of runs up to
    # thousands of epochs long.
    v = np.asarray(values, dtype=float)
    second = v[2:] - 2.0 * v[1:-1] + v[:-2]
    # A second difference of i.i.d. noise has variance 6 sigma^2.
    return _MAD_TO_SIGMA * float(np.median(np.abs(second))) / math.sqrt(6.0)


def grade(value: float, low: float, high: float) -> float:
    """Where *value* sits between *low* (0) and *high* (1), clamped: turns margins into a score."""
    if high == low:
        return 1.0 if value >= high else 0.0
    return min(1.0, max(0.0, (value - low) / (high - low)))


def argmin(values: Sequence[float]) -> int:
    """Index of the first minimum."""
    return min(range(len(values)), key=values.__getitem__)


def argmax(values: Sequence[float]) -> int:
    """Index of the first maximum."""
    return max(range(len(values)), key=values.__getitem__)
