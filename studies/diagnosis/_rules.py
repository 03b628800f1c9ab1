"""The seed's step 2 as rules over the measures of a finite run (≥ 3 epochs).

Order matters and follows the seed: a run whose validation got worse while training kept
fitting is overfitting, whatever else it does; otherwise a run whose validation is still
improving steadily is undertrained (train longer); otherwise a converged run that fits the
training set far better than validation is overfitting too (high variance); otherwise a run
that has plateaued with little gap at a level well below what the task allows is
underfitting; the rest is healthy.
Each rule grades its margin into a confidence.

The thresholds were set on the training half of the labeled set in bench/diagnoser only;
docs/diagnoser.md reports the held-out half.
"""

import math
from dataclasses import dataclass

from studies.diagnosis._measure import Measures, smoothing_width
from studies.diagnosis._result import Label
from studies.diagnosis._stats import grade

# Overfitting: the smoothed val loss climbed back this fraction of its earlier drop ...
RISE_REL_MIN = 0.12
# ... (more than this with no accuracy/gap confirmation) ...
RISE_REL_ALONE = 0.3
# ... and the gap grew, or val accuracy fell from its best, by at least this much.
GAP_GROWTH_MIN = 0.01
ACC_DROP_MIN = 0.015
# A val loss rise or val accuracy drop must exceed this many sigmas of its smoothed noise.
NOISE_SIGMAS = 1.0
# High variance: converged with a train/val accuracy gap of at least this (and at least the
# train error itself, i.e. val error ≥ twice train error); for losses only, val − train loss
# of at least GAP_LARGE_LOSS and val ≥ GAP_LOSS_RATIO × train.
GAP_LARGE = 0.05
GAP_LARGE_LOSS = 0.1
GAP_LOSS_RATIO = 5.0
# ... or an accuracy gap of at least this when the loss gap confirms it.
GAP_LARGE_WITH_LOSS = 0.03
# Undertrained: the val metric's trend over the end window (Kendall tau) is at least this
# consistent, and extrapolating its Theil–Sen slope over the window gains at least
UNDERTRAINED_TAU = 0.3
UNDERTRAINED_ACC_GAIN = 0.03  # accuracy (absolute), and more than 2 sigma of its noise
UNDERTRAINED_LOSS_GAIN = 0.15  # val loss, as a fraction of its range over the run
# ... or the val loss fell steadily (tau ≤ −STEADY_TAU over a window of at least
# STEADY_MIN_WINDOW epochs) by at least this fraction of its current level.
STEADY_TAU = 0.8
STEADY_MIN_WINDOW = 4
STEADY_LEVEL_GAIN = 0.2
# Underfitting: the train accuracy's plateau (chance-normalised) is below this ...
UNDERFIT_LEVEL = 0.9
# ... with a train/val accuracy gap of at most this, and the val metric flat for this many
# epochs (also as a fraction of the run).
UNDERFIT_GAP_MAX = 0.05
PLATEAU_MIN_EPOCHS = 3
PLATEAU_MIN_FRACTION = 0.2
# With study context: this run's val error at least this many times the study's best.
UNDERFIT_STUDY_ERROR_RATIO = 2.0
UNDERFIT_STUDY_ACC_MARGIN = 0.02
# Loss-only runs: a train loss above this fraction of log(num_classes) has not fitted.
UNDERFIT_LOSS_LEVEL = 0.25


@dataclass(frozen=True)
class Verdict:
    """A label, its confidence and the sentence that says why."""

    label: Label
    confidence: float
    reason: str


def _still_fitting(m: Measures, since: int) -> bool:
    """Training kept improving after epoch index *since* (lower loss, else higher accuracy)."""
    if m.train_loss is not None:
        return m.train_loss.smooth[-1] <= m.train_loss.smooth[since] + 1e-12
    if m.train_acc is not None:
        return m.train_acc.smooth[-1] >= m.train_acc.smooth[since] - 1e-12
    return True


def _smoothed_noise(m: Measures, sigma: float) -> float:
    """NOISE_SIGMAS sigmas of the difference of two running medians of noise *sigma*
    (each ≈ 1.25σ/√width)."""
    return NOISE_SIGMAS * math.sqrt(2) * 1.25 * sigma / math.sqrt(smoothing_width(m.epochs))


def _overfitting(m: Measures) -> Verdict | None:
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
            and m.val_loss_rise > _smoothed_noise(m, m.val_loss.noise)
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
        and m.val_acc_drop >= max(2 * ACC_DROP_MIN, _smoothed_noise(m, m.val_acc.noise))
        and gap_growth is not None
        and gap_growth >= 2 * GAP_GROWTH_MIN
        and _still_fitting(m, m.best_index)
    ):
        return Verdict(
            Label.OVERFITTING,
            0.55 + 0.35 * grade(m.val_acc_drop, 2 * ACC_DROP_MIN, 6 * ACC_DROP_MIN),
            f"validation accuracy fell {m.val_acc_drop:.3f} below its best while the "
            f"train/val gap grew by {gap_growth:.3f}",
        )
    return None


def _overfitting_gap(m: Measures) -> Verdict | None:
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


def _undertrained(m: Measures) -> Verdict | None:
    scores: list[float] = []
    reasons: list[str] = []
    if m.val_acc is not None:
        gain = m.val_acc.slope * m.window
        needed = max(UNDERTRAINED_ACC_GAIN, 2 * m.val_acc.noise)
        if m.val_acc.tau >= UNDERTRAINED_TAU and gain >= needed:
            scores.append(grade(gain, needed, 4 * needed))
            reasons.append(
                f"validation accuracy is rising {m.val_acc.slope:.3g} per epoch over the last "
                f"{m.window} epochs"
            )
    if m.val_loss is not None:
        span = max(m.val_loss.smooth) - min(m.val_loss.smooth)
        gain = -m.val_loss.slope * m.window / span if span > 0 else 0.0
        needed = max(UNDERTRAINED_LOSS_GAIN, 2 * m.val_loss.noise / span if span > 0 else 0.0)
        if m.val_loss.tau <= -UNDERTRAINED_TAU and gain >= needed:
            scores.append(grade(gain, needed, 4 * needed))
            reasons.append(
                f"validation loss is falling {-m.val_loss.slope:.3g} per epoch over the last "
                f"{m.window} epochs"
            )
        # A steady fall late in a long run is small next to the first epochs' drop, but a
        # val loss that falls epoch after epoch, by a good part of its current level, says
        # more epochs will pay.
        level = m.val_loss.smooth[-1]
        fall = -m.val_loss.slope * m.window / level if level > 0 else 0.0
        if (
            not scores
            and m.window >= STEADY_MIN_WINDOW
            and m.val_loss.tau <= -STEADY_TAU
            and fall >= STEADY_LEVEL_GAIN
        ):
            scores.append(grade(fall, STEADY_LEVEL_GAIN, 4 * STEADY_LEVEL_GAIN))
            reasons.append(
                f"validation loss fell in nearly every one of the last {m.window} epochs, "
                f"{fall / m.window:.0%} of its level per epoch"
            )
    if not scores:
        return None
    return Verdict(
        Label.UNDERTRAINED,
        0.55 + 0.4 * max(scores),
        " and ".join(reasons) + ": it is still improving",
    )


def _underfitting(m: Measures, study_best_val_acc: float | None) -> Verdict | None:
    plateau = m.plateau_epochs or 0
    if plateau < max(PLATEAU_MIN_EPOCHS, PLATEAU_MIN_FRACTION * m.epochs):
        return None
    small_gap = m.gap is None or m.gap[-1] <= (
        UNDERFIT_GAP_MAX if m.train_acc is not None and m.val_acc is not None else 0.1
    )
    if not small_gap:
        return None
    if study_best_val_acc is not None and m.val_acc is not None:
        final = m.val_acc.smooth[-1]
        error, best_error = 1.0 - final, 1.0 - study_best_val_acc
        if (
            final <= study_best_val_acc - UNDERFIT_STUDY_ACC_MARGIN
            and error >= UNDERFIT_STUDY_ERROR_RATIO * best_error
        ):
            ratio = error / best_error if best_error > 0 else 10.0
            return Verdict(
                Label.UNDERFITTING,
                0.55 + 0.4 * grade(ratio, UNDERFIT_STUDY_ERROR_RATIO, 5.0),
                f"validation accuracy plateaued at {final:.3f}, well below the study's best "
                f"{study_best_val_acc:.3f}, with little train/val gap",
            )
        return None
    accuracies = [s.smooth[-1] for s in (m.train_acc, m.val_acc) if s is not None]
    if accuracies:
        # The better of train and val accuracy: dropout and augmentation hold the measured
        # train accuracy down, so only both being low means the model cannot fit the task.
        chance = m.chance_acc or 0.0
        reached = max(accuracies)
        level = (reached - chance) / (1.0 - chance)
        if level < UNDERFIT_LEVEL:
            return Verdict(
                Label.UNDERFITTING,
                0.55 + 0.4 * grade(UNDERFIT_LEVEL - level, 0.0, 0.3),
                f"accuracy plateaued at {reached:.3f} (train and validation) for {plateau} "
                "epochs with little train/val gap",
            )
        return None
    if m.train_loss is not None and m.chance_loss is not None:
        level = m.train_loss.smooth[-1] / m.chance_loss
        if level > UNDERFIT_LOSS_LEVEL:
            return Verdict(
                Label.UNDERFITTING,
                0.5 + 0.3 * grade(level, UNDERFIT_LOSS_LEVEL, 0.6),
                f"training loss plateaued at {m.train_loss.smooth[-1]:.3f} "
                f"({level:.0%} of log(num_classes)) with little train/val gap",
            )
    return None


def decide(m: Measures, study_best_val_acc: float | None) -> Verdict:
    """The label of a finite run with at least 3 epochs."""
    verdict = _overfitting(m) or _undertrained(m) or _overfitting_gap(m)
    verdict = verdict or _underfitting(m, study_best_val_acc)
    return verdict or Verdict(
        Label.HEALTHY, 0.75, "converged with a small gap, validation at its best"
    )
