"""Turn validated curves into the robust numbers the verdict is read from.

Every quantity here is reported in the Evidence, so a user can recompute and check it.
"""

import math
from dataclasses import dataclass

from studies.diagnosis._curves import Curves
from studies.diagnosis._stats import (
    argmax,
    argmin,
    kendall_tau,
    noise_sigma,
    running_median,
    theil_sen_slope,
)


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


def smoothing_width(epochs: int) -> int:
    """Running-median width: wide enough to drop one bad epoch, narrow enough for short runs."""
    return 3 if epochs < 12 else 5 if epochs < 50 else 7


def window_size(epochs: int) -> int:
    """Epochs at the end of the run over which trends are measured (3 to 12)."""
    return min(epochs, max(3, min(12, round(epochs * 0.3))))


@dataclass(frozen=True)
class Series:
    """One metric: raw values, smoothed values and its end-of-run trend."""

    raw: list[float]
    smooth: list[float]
    slope: float  # Theil–Sen slope over the window, per epoch
    tau: float  # Kendall's tau over the window
    noise: float  # sigma of the epoch-to-epoch noise (second half of the run)

    @classmethod
    def of(cls, values: list[float | None], window: int) -> "Series":
        raw = filled(values)
        tail = raw[-window:]
        return cls(
            raw=raw,
            smooth=running_median(raw, smoothing_width(len(raw))),
            slope=theil_sen_slope(tail),
            tau=kendall_tau(tail),
            noise=noise_sigma(raw[len(raw) // 2 :]),
        )


@dataclass(frozen=True)
class Measures:
    """What the rules look at (non-diverged runs with at least 3 epochs)."""

    epochs: int
    window: int
    chance_acc: float | None
    chance_loss: float | None
    train_loss: Series | None
    val_loss: Series | None
    train_acc: Series | None
    val_acc: Series | None
    best_index: int  # 0-based best epoch by the val metric (acc preferred)
    gap: list[float] | None  # train_acc - val_acc, or val_loss - train_loss (smoothed)
    gap_trend: float | None
    val_loss_rise: float | None
    val_loss_rise_rel: float | None
    val_acc_drop: float | None
    plateau_epochs: int | None

    @property
    def val_metric(self) -> Series | None:
        return self.val_acc or self.val_loss


def chance_levels(curves: Curves) -> tuple[float | None, float | None]:
    """Chance accuracy and the loss of a uniform guess, when num_classes is known."""
    if curves.num_classes is None:
        return None, None
    return 1.0 / curves.num_classes, math.log(curves.num_classes)


def _plateau(series: Series, tolerance: float) -> int:
    """Epochs, counted back from the end, whose smoothed value stays near the last one."""
    final = series.smooth[-1]
    count = 0
    for value in reversed(series.smooth):
        if abs(value - final) > tolerance:
            break
        count += 1
    return count


def measure(curves: Curves) -> Measures:
    """Compute every rule input from *curves* (which must hold only finite losses)."""
    epochs = curves.epochs
    window = window_size(epochs)
    chance_acc, chance_loss = chance_levels(curves)

    def series(values: list[float | None] | None) -> Series | None:
        return None if values is None else Series.of(values, window)

    train_loss, val_loss = series(curves.train_loss), series(curves.val_loss)
    train_acc, val_acc = series(curves.train_acc), series(curves.val_acc)

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
        drop = max(val_loss.smooth[: lowest + 1]) - val_loss.smooth[lowest]
        # Relative to how far the loss fell: a rise of 0.02 after falling from 2.3 to 0.05 is
        # the usual late-training overconfidence, not overfitting.
        rise_rel = rise / drop if drop > 0 else None

    acc_drop = None if val_acc is None else max(val_acc.smooth) - val_acc.smooth[-1]

    plateau = None
    if val_acc is not None:
        plateau = _plateau(val_acc, max(3 * val_acc.noise, 0.005))
    elif val_loss is not None:
        span = max(val_loss.smooth) - min(val_loss.smooth)
        plateau = _plateau(val_loss, max(3 * val_loss.noise, 0.02 * span))

    return Measures(
        epochs=epochs,
        window=window,
        chance_acc=chance_acc,
        chance_loss=chance_loss,
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
    )
