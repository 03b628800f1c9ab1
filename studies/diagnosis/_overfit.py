"""The overfitting rules: validation got worse while training kept fitting (the seed's sign),
or a converged training set fitted far better than validation (high variance).

Read from the measures of a finite run of ≥ 3 epochs; _rules.decide orders them among the
other rules. The few fitted values were chosen on the training half of the labeled set in
bench/diagnoser only (docs/diagnoser.md).
"""

import math

from studies.diagnosis._measure import (
    MATERIAL_LOSS_SHARE,
    Measures,
    material_acc_gain_at,
    smoothing_width,
)
from studies.diagnosis._result import Label
from studies.diagnosis._stats import grade
from studies.diagnosis._verdict import Verdict

# Overfitting: the smoothed val loss climbed back this fraction of its earlier drop ...
RISE_REL_MIN = 0.12
# ... (more than this with no accuracy/gap confirmation) ...
RISE_REL_ALONE = 0.3
# ... and the gap grew, or val accuracy fell from its best, by at least this much.
GAP_GROWTH_MIN = 0.01
ACC_DROP_MIN = 0.015
# A val loss rise or val accuracy drop must exceed this many sigmas of its smoothed noise.
NOISE_SIGMAS = 1.0
# The rise is sustained: the minimum lies at least this many epochs before the last one, so
# that more than one epoch since has been worse (the labeled set's "passed its best").
SUSTAINED_EPOCHS = 2
# High variance: converged with a train/val accuracy gap of at least this (and at least the
# train error itself, i.e. val error ≥ twice train error); for losses only, val − train loss
# of at least GAP_LARGE_LOSS and val ≥ GAP_LOSS_RATIO × train.
GAP_LARGE = 0.05
GAP_LARGE_LOSS = 0.1
GAP_LOSS_RATIO = 5.0
# ... or an accuracy gap of at least this when the loss gap confirms it.
GAP_LARGE_WITH_LOSS = 0.03
# A validation loss falls "steadily" when Kendall's tau over the end window is at most minus
# this (the rank correlation of a curve that falls in most pairs of epochs).
STEADY_FALL_TAU = 0.6


def _still_fitting(m: Measures, since: int) -> bool:
    """Training kept improving after epoch index *since* (lower loss, else higher accuracy)
    by more than its own smoothed noise and by a material share of where it stood: a fifth
    of the loss (MATERIAL_LOSS_SHARE), else a tenth of the training error left (the margins
    "more epochs pay" uses). A weak model whose training curve only jitters or creeps along its
    plateau is not fitting the training set any further, so a validation dip beside it is
    noise or the LR, not the seed's overfitting sign (weak-model families whose training loss
    moved by less than its noise, or fell a few percent over dozens of epochs while
    validation sagged, were called overfitting; memorising runs fall by far more)."""
    if m.train_loss is not None:
        start = m.train_loss.smooth[since]
        fall = start - m.train_loss.smooth[-1]
        return fall > smoothed_noise(m, m.train_loss.noise) and fall >= (
            MATERIAL_LOSS_SHARE * abs(start)
        )
    if m.train_acc is not None:
        start = m.train_acc.smooth[since]
        rise = m.train_acc.smooth[-1] - start
        return rise > smoothed_noise(m, m.train_acc.noise) and rise >= material_acc_gain_at(start)
    return True


def smoothed_noise(m: Measures, sigma: float) -> float:
    """NOISE_SIGMAS sigmas of the difference of two running medians of noise *sigma*
    (each ≈ 1.25σ/√width)."""
    return NOISE_SIGMAS * math.sqrt(2) * 1.25 * sigma / math.sqrt(smoothing_width(m.epochs))


def _val_loss_still_falling(m: Measures) -> bool:
    """The validation loss still falls epoch after epoch to a new low: validation has not got
    worse, whatever a noisy accuracy dipped to. The loss averages over every example's
    confidence, so it is the steadier witness of the two; a flat or jumpy loss says nothing
    either way, and leaves the accuracy's drop to speak."""
    if m.val_loss is None:
        return False
    smooth = m.val_loss.smooth
    return m.val_loss.tau <= -STEADY_FALL_TAU and smooth[-1] - min(smooth) <= smoothed_noise(
        m, m.val_loss.noise
    )


def overfitting(m: Measures) -> Verdict | None:
    """Validation got worse after its best while training kept improving (the seed's sign)."""
    gap_growth = None if m.gap is None else m.gap[-1] - m.gap[m.best_index]
    confirmed = (gap_growth is not None and gap_growth >= GAP_GROWTH_MIN) or (
        m.val_acc_drop is not None and m.val_acc_drop >= ACC_DROP_MIN
    )
    rise = m.val_loss_rise_rel
    if m.val_loss is not None and rise is not None and m.val_loss_rise is not None:
        lowest = min(range(m.epochs), key=m.val_loss.smooth.__getitem__)
        needed = RISE_REL_MIN if confirmed else RISE_REL_ALONE
        if (
            rise >= needed
            and lowest <= m.epochs - 1 - SUSTAINED_EPOCHS
            and m.val_loss_rise > smoothed_noise(m, m.val_loss.noise)
            and (_still_fitting(m, lowest))
        ):
            return Verdict(
                Label.OVERFITTING,
                0.55 + 0.4 * grade(rise, needed, 3 * needed),
                f"validation loss rose {rise:.0%} of its earlier drop above its minimum "
                "while training kept improving",
            )
    # The seed's own signature in accuracies: train accuracy up, validation accuracy down.
    if (
        m.val_acc is not None
        and m.val_acc_drop is not None
        and m.val_acc_drop >= max(2 * ACC_DROP_MIN, smoothed_noise(m, m.val_acc.noise))
        and gap_growth is not None
        and gap_growth >= 2 * GAP_GROWTH_MIN
        and _still_fitting(m, m.best_index)
        and not _val_loss_still_falling(m)
    ):
        return Verdict(
            Label.OVERFITTING,
            0.55 + 0.35 * grade(m.val_acc_drop, 2 * ACC_DROP_MIN, 6 * ACC_DROP_MIN),
            f"validation accuracy fell {m.val_acc_drop:.3f} below its best while the "
            f"train/val gap grew by {gap_growth:.3f}",
        )
    return None


def overfitting_gap(m: Measures) -> Verdict | None:
    """Converged with the training set fitted far better than validation (high variance).

    Either a clear accuracy gap, or a smaller one backed by a loss gap: a memorised training
    set (train loss near zero) against a validation loss many times higher.
    """
    acc_gap = loss_gap = None
    if m.train_acc is not None and m.val_acc is not None:
        acc_gap = m.train_acc.smooth[-1] - m.val_acc.smooth[-1]
    train = val = None
    if m.train_loss is not None and m.val_loss is not None:
        train, val = m.train_loss.smooth[-1], m.val_loss.smooth[-1]
        if val - train >= GAP_LARGE_LOSS and val >= GAP_LOSS_RATIO * max(train, 0.0):
            loss_gap = val - train
    if acc_gap is not None and m.train_acc is not None and m.val_acc is not None:
        train_error = 1.0 - m.train_acc.smooth[-1]
        needed = GAP_LARGE if loss_gap is None else GAP_LARGE_WITH_LOSS
        if acc_gap >= needed and acc_gap >= train_error:
            return Verdict(
                Label.OVERFITTING,
                0.55 + 0.4 * grade(acc_gap, needed, 3 * GAP_LARGE),
                f"training accuracy {m.train_acc.smooth[-1]:.3f} but validation only "
                f"{m.val_acc.smooth[-1]:.3f}: a gap of {acc_gap:.3f} that training no longer "
                "closes",
            )
        return None
    if loss_gap is not None and train is not None and val is not None:
        return Verdict(
            Label.OVERFITTING,
            0.5 + 0.3 * grade(loss_gap, GAP_LARGE_LOSS, 3 * GAP_LARGE_LOSS),
            f"training loss {train:.3f} but validation loss {val:.3f}: a gap training no "
            "longer closes",
        )
    return None
