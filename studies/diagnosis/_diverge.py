"""Divergence: the one verdict that must be reached within an epoch, live.

Three signatures of a learning rate far too high (the seed's step 1):
- a non-finite loss (the trainer stops at once and records it as null/NaN);
- an exploded loss: finite, but risen an order of magnitude of the run's own scale above
  where it started (and, for a per-sample cross-entropy, ten times a uniform guess's log K).
  Scale-free by construction: a sum-reduced loss of 300, an MSE in the hundreds, a loss of
  1e-4 and a negative log-likelihood are each judged against their own start and range;
- never learned, or collapsed: every accuracy at chance level with a loss at or above
  log(num_classes), either after the run had learned something, or (never having learned)
  with a loss that is not coming down smoothly: one once well above log(num_classes), or
  one that jumps around. A learning rate far too low also sits at chance near log(K), but
  its loss is smooth and falls steadily (undertrained, not diverged);
- unlearned: a run that had learned, collapsing now — for two epochs running its training
  loss stands above where the run began (and at or above log(num_classes)) while its
  accuracy has lost most of what it gained over chance. Seen before the collapse settles at
  chance for the epochs the rule above needs.
"""

import math
from dataclasses import dataclass
from statistics import median

import numpy as np

from studies.diagnosis._curves import Curves
from studies.diagnosis._measure import PER_SAMPLE_FACTOR, Levels, window_size
from studies.diagnosis._stats import grade, kendall_tau, noise_sigma, trend_p_value

# A loss that climbs this many times the run's own scale above its start has exploded: no
# healthy run's epoch-mean loss climbs an order of magnitude above where it began.
EXPLODE_FACTOR = 10.0
# "At chance": accuracy within this fraction of the distance from chance to perfect.
CHANCE_MARGIN = 0.1
# Leaving chance is a level held, not one epoch's luck: an accuracy must clear chance, by more
# than its own epoch-to-epoch noise, in at least this many epochs. A net pushed around by a
# learning rate far too high lands on one class or another for an epoch or two: wave 9 of the
# labeled set has one read as overfitting once a lucky first epoch made the rest a "drop",
# wave 10 a 2-class one read as underfitting at a training accuracy of 0.53.
LEFT_CHANCE_EPOCHS = 2
# "Had learned something": accuracy once this far (same scale) above chance.
LEARNED_MARGIN = 0.3
COLLAPSE_WINDOW = 3
# A run that had learned has collapsed also when some of its last epochs flickered off
# chance, if it sat at chance through most of its end window, and at least this many epochs
# (twice the strict window: a two-epoch dip after learning is not a collapse).
COLLAPSE_SETTLED = 2 * COLLAPSE_WINDOW
# Unlearned: the accuracy kept less than this share of its best gain over chance, with the
# training loss above its start, in this many epochs running (one such epoch is a spike a
# run can recover from: the labeled set has three, in small-batch nets without normalization).
UNLEARNED_KEPT_SHARE = 0.5
UNLEARNED_EPOCHS = 2
# A run that never learned counts as stuck (not slow) only after this many epochs, and only
# with a loss once this many times log(C), or epoch-to-epoch loss noise of this fraction of
# it, and without a steady fall (Kendall's tau of the loss at most -STEADY_FALL).
STUCK_MIN_EPOCHS = 4
UNSTABLE_LOSS = 1.5
UNSTABLE_NOISE = 0.005
STEADY_FALL = 0.6
# A flat loss above log(K) (no descent rare by chance) counts as stuck only after this many
# epochs: fewer points cannot show a slow descent at all (three in order: one time in six).
FLAT_MIN_EPOCHS = 8
# ... and only above log(K) by more than this many sigmas of its epoch-to-epoch noise.
FLAT_ABOVE_NOISE = 3.0


@dataclass(frozen=True)
class Divergence:
    """Why a run counts as diverged."""

    confidence: float
    reason: str
    nonfinite_epochs: list[int]
    exploded_epoch: int | None

    @property
    def sudden(self) -> bool:
        """A non-finite or exploded loss: seen in the epoch it happens (else a run that
        never learned or collapsed to chance, which takes epochs to establish)."""
        return bool(self.nonfinite_epochs) or self.exploded_epoch is not None


def cleared_chance(acc: list[float], chance: float) -> bool:
    """Whether accuracy curve *acc* ever left chance: above the CHANCE_MARGIN band, by more
    than the curve's own noise, in LEFT_CHANCE_EPOCHS epochs (in its one epoch, for a
    one-epoch curve). Rule 3's test (_never_learned.py), on the whole run."""
    band = chance + CHANCE_MARGIN * (1.0 - chance) + noise_sigma(acc)
    return sum(a > band for a in acc) >= min(LEFT_CHANCE_EPOCHS, len(acc))


def _nonfinite_epochs(curves: Curves) -> list[int]:
    # Unlike an accuracy, a null loss is never "not logged": the trainer writes a loss that
    # turned NaN/inf as null, so even an all-null loss list is evidence of divergence.
    bad: set[int] = set()
    for values in (curves.train_loss, curves.val_loss):
        bad.update(i + 1 for i, v in enumerate(values or ()) if v is None)
    return sorted(bad)


def _exploded(values: list[float | None] | None, chance_loss: float | None) -> np.ndarray:
    """Per epoch: whether the loss rose EXPLODE_FACTOR times the run's own scale above its
    start (all False without a first loss).

    The scale is the larger of the first loss's size and how far the loss has fallen so far,
    so a loss that started at 0.001 or at -5 is judged on its own terms; for a per-sample
    cross-entropy the rise is counted from log(K) when the run started below it. The first
    epoch has nothing before it to explode from: a first loss far above log(K) is either a
    sum-reduced loss (batch × log K) or a blow-up within the epoch, and only the epochs after
    it tell which (a run that then never learns is caught as such, see _collapse).
    """
    if not values or values[0] is None:
        return np.zeros(len(values or ()), dtype=bool)
    first = values[0]
    # Vectorised: the live check runs this after every epoch of runs up to 1,000 epochs long.
    losses = np.array([math.nan if v is None else v for v in values])
    with np.errstate(invalid="ignore", over="ignore"):
        lowest = np.fmin.accumulate(losses)  # the minimum so far, gaps skipped
        scale = np.maximum(abs(first), first - lowest)
        base = max(first, chance_loss) if chance_loss is not None else first
        exploded = (losses - base >= (EXPLODE_FACTOR - 1) * scale) & (scale > 0)
    exploded[0] = False  # nothing before the first epoch to explode from
    return exploded


def _first(epochs: np.ndarray) -> int | None:
    hits = np.flatnonzero(epochs)
    return int(hits[0]) + 1 if hits.size else None


def _exploded_epoch(curves: Curves, chance_loss: float | None) -> int | None:
    """The first epoch of an explosion: of the training loss; of the validation loss only
    when there is no training loss, or it stayed exploded for two epochs running, or the
    training loss stood above its own start in the same epoch. One bad evaluation (a
    validation loss 17× up for an epoch while the training loss stays near 0, then back) is
    a transient of an over-confident model, not a run that blew up; one that lasts is caught
    an epoch later, within the live check's one-epoch promise. But a training loss back above
    where it started has lost what it learned (twelfth session, wave 19: a warm-up at SGD
    0.45 whose validation loss went 0.17 → 94 as its training loss went 0.56 → 4.8, stopped
    only at its collapse two epochs later)."""
    train = _exploded(curves.train_loss, chance_loss)
    if train.any():
        return _first(train)
    val = _exploded(curves.val_loss, chance_loss)
    if curves.train_loss is None or not val.any():
        return _first(val)
    first = curves.train_loss[0]
    lost = np.array(
        [first is not None and v is not None and v > first for v in curves.train_loss],
        dtype=bool,
    )
    lasting = np.append(val[1:] & val[:-1], False)  # exploded here and the epoch after
    return _first((val & lost) | lasting)


def loss_unstable(losses: list[float], reference: float) -> bool:
    """A loss that is not coming down smoothly: once well above *reference* (log K, or the
    loss's own median when it is not a per-sample cross-entropy), or jumping around without
    falling epoch after epoch (a slow, steady fall has second differences too)."""
    if max(losses) >= UNSTABLE_LOSS * reference:
        return True
    steady_fall = kendall_tau(losses[1:]) <= -STEADY_FALL
    return not steady_fall and noise_sigma(losses) >= UNSTABLE_NOISE * abs(reference)


def _stuck_above_uniform(losses: list[float], log_k: float | None) -> bool:
    """Long enough to show a descent, none shows, and the loss sits above log(K) beyond its
    noise: a network the learning rate damaged (dead units, saturated outputs) is worse than
    a uniform guess and stays there, however smooth. A learning rate far too low sits AT
    log(K) (an untrained network's near-uniform guess) or moves down from it epoch after
    epoch, however slowly — an order rare by chance. Only for a per-sample cross-entropy,
    where log(K) is known; the first epoch is left out: it averages the untrained start."""
    if log_k is None or len(losses) < FLAT_MIN_EPOCHS:
        return False
    later = losses[1:]
    above = median(later) - log_k
    return (
        above > FLAT_ABOVE_NOISE * noise_sigma(later)
        and above > 0.0
        and trend_p_value(later, rising=False) > 0.05
    )


def _settled_at_chance(judged: list[list[float]], band: float) -> bool:
    """Whether accuracy has sat in the chance *band* through most of the run's end window
    (at least COLLAPSE_SETTLED epochs), the latest epoch included: a collapsed net flickers
    off chance now and then (it lands on one class or another), which must not undo the
    collapse; a net that learned and recovers from a dip is above the band most epochs."""
    settled = max(COLLAPSE_SETTLED, window_size(len(judged[0])))
    return all(
        len(acc) >= settled + COLLAPSE_WINDOW
        and acc[-1] <= band
        and median(acc[-settled:]) <= band
        for acc in judged
    )


def _collapse(levels: Levels) -> tuple[float, str] | None:
    chance, chance_loss = levels.chance_acc, levels.chance_loss
    accuracies = levels.accuracies
    if chance is None or not accuracies or levels.epochs < COLLAPSE_WINDOW:
        return None
    scale = 1.0 - chance
    # Every recent epoch at chance, read on the validation accuracy when there is one: it is
    # measured on the model as the epoch leaves it, while the training accuracy averages the
    # whole epoch and still holds what the model knew before a collapse within it (and a
    # model whose validation accuracy is well above chance has learned, whatever dropout
    # does to its training accuracy).
    # Any recent epoch clear of the band counts here, noise or not (unlike rule 3's
    # cleared_chance): stopping a run is final, and a slow start's first steps off chance
    # are small and noisy.
    judged = [levels.val_acc] if levels.val_acc is not None else accuracies
    band = chance + CHANCE_MARGIN * scale
    learned_before = any(
        max(acc[:-COLLAPSE_WINDOW], default=0.0) >= chance + LEARNED_MARGIN * scale
        for acc in accuracies
    )
    if any(max(acc[-COLLAPSE_WINDOW:]) > band for acc in judged) and not (
        learned_before and _settled_at_chance(judged, band)
    ):
        return None
    recent_acc = median(accuracies[0][-COLLAPSE_WINDOW:])
    losses = levels.loss
    stand_in = False
    if losses is not None and chance_loss is None and min(losses) > 0:
        # Not a per-sample cross-entropy (sum-reduced, or another loss): its own median
        # stands in for log(K), as the level a model at chance keeps.
        chance_loss, stand_in = median(losses), True
    if losses is not None and chance_loss is not None:
        recent_loss = median(losses[-COLLAPSE_WINDOW:])
        # Below the level a model at chance keeps: learning, in loss terms. Not when that
        # level is the loss's own median and the loss jumps by orders of magnitude around it
        # (a net blown up within its first epoch): "below its median" then means nothing.
        if recent_loss < 0.95 * chance_loss and not (
            stand_in and max(losses) >= UNSTABLE_LOSS * chance_loss
        ):
            return None
        loss_clause = (
            f"with a loss of {recent_loss:.4g} jumping around its own median {chance_loss:.4g} "
            "(not a per-sample cross-entropy: log(K) says nothing of it)"
            if stand_in
            else f"with a loss of {recent_loss:.3f}, near or above "
            f"log({levels.curves.num_classes}) = {chance_loss:.3f}"
        )
        # The trend of the recent half: a blown-up first epoch must not pass for a decline.
        declining = kendall_tau(losses[len(losses) // 2 :])
        if not learned_before:
            # Never learned: diverged unless the loss comes down smoothly (a learning rate
            # far too low sits near log(C), smooth, falling or flat, and must not be stopped).
            # A loss once far above a uniform guess is a blow-up however short the run; mere
            # noise needs STUCK_MIN_EPOCHS epochs to be told from a slow start.
            blown_up = any(
                max(loss) >= UNSTABLE_LOSS * chance_loss for loss in _judged_losses(levels)
            )
            if not blown_up and (
                levels.epochs < STUCK_MIN_EPOCHS
                or not (
                    loss_unstable(losses, chance_loss)
                    or _stuck_above_uniform(losses, levels.chance_loss)
                )
            ):
                return None
            return 0.7 + 0.25 * grade(declining, -0.5, 0.3), (
                f"never learned: accuracy at chance level ({recent_acc:.3f} vs "
                f"1/{levels.curves.num_classes}) {loss_clause}, noisy or not coming down; "
                "the learning rate is far too high, or the data or labels are broken"
            )
        confidence = 0.7 + 0.25 * max(float(learned_before), grade(declining, -0.5, 0.3))
        return confidence, (
            f"accuracy collapsed to chance level ({recent_acc:.3f} vs "
            f"1/{levels.curves.num_classes}) {loss_clause}"
        )
    rising = kendall_tau(accuracies[0])
    if not learned_before and (levels.epochs < STUCK_MIN_EPOCHS + 1 or rising >= 0.5):
        return None
    return 0.7, (
        f"never learned: accuracy stuck at chance level ({recent_acc:.3f} vs "
        f"1/{levels.curves.num_classes}); the learning rate is far too high, or the data or "
        "labels are broken"
    )


def _unlearned(levels: Levels) -> tuple[float, str] | None:
    """A run that had learned losing it: for UNLEARNED_EPOCHS epochs running, its training
    loss above its first epoch's (an average that includes the untrained start, so a run
    still learning never climbs back past it) and, for a per-sample cross-entropy, at or
    above log(K), while its accuracy kept less than UNLEARNED_KEPT_SHARE of its best gain
    over chance. Wave 20's Adam warm-up collapse went 0.85 → 0.44 → 0.17 → 0.13 on 8 classes
    as its training loss went 0.73 → 1.05 → 2.42, and was called overfitting and undertrained
    until it had sat at chance for three epochs. Every prefix of every run of the labeled
    set: it fires on no run that did not diverge (a one-epoch version fired on three spikes
    that recovered)."""
    chance, losses = levels.chance_acc, levels.train_loss
    acc = levels.val_acc if levels.val_acc is not None else levels.train_acc
    if chance is None or losses is None or acc is None or levels.epochs <= UNLEARNED_EPOCHS:
        return None
    scale, floor = 1.0 - chance, levels.chance_loss
    best = max(acc[:-UNLEARNED_EPOCHS])
    if best < chance + LEARNED_MARGIN * scale:
        return None  # never learned: _collapse's question
    for epoch in range(levels.epochs - UNLEARNED_EPOCHS, levels.epochs):
        loss_back = losses[epoch] > losses[0] and (floor is None or losses[epoch] >= floor)
        if not loss_back or acc[epoch] - chance >= UNLEARNED_KEPT_SHARE * (best - chance):
            return None
    kept = (acc[-1] - chance) / (best - chance)
    return 0.7 + 0.25 * grade(UNLEARNED_KEPT_SHARE - kept, 0.0, UNLEARNED_KEPT_SHARE), (
        f"the run unlearned: its training loss ({losses[-1]:.3g}) stands above where it began "
        f"({losses[0]:.3g}) and its accuracy fell from {best:.3f} to {acc[-1]:.3f} "
        f"(chance 1/{levels.curves.num_classes}); the learning rate is too high for this "
        "network (lower it, or warm up to a lower peak)"
    )


def _judged_losses(levels: Levels) -> list[list[float]]:
    """The losses a blow-up is read from: the one the rules judge (training, else
    validation), and the validation loss too where it is a per-sample cross-entropy like
    the first (it came within PER_SAMPLE_FACTOR × log K at least once: a sum-reduced one
    never does). A network whose outputs blew up can still fit its training batches near
    log(K) while its validation loss sits hundreds of times above it — no learning rate far
    too low does that."""
    judged = [levels.loss] if levels.loss is not None else []
    val, log_k = levels.val_loss, levels.chance_loss
    if (
        val is not None
        and val is not levels.loss
        and log_k is not None
        and min(val) <= PER_SAMPLE_FACTOR * log_k
    ):
        judged.append(val)
    return judged


def find_divergence(levels: Levels) -> Divergence | None:
    """The divergence verdict for the run of *levels*, or None when it has not diverged."""
    curves = levels.curves
    nonfinite = _nonfinite_epochs(curves)
    chance_loss = levels.chance_loss
    exploded = _exploded_epoch(curves, chance_loss)
    if nonfinite:
        train_bad = curves.train_loss is not None and None in curves.train_loss
        which = "training" if train_bad else "validation"
        return Divergence(
            confidence=0.97 if train_bad else 0.85,
            reason=f"the {which} loss became non-finite at epoch {nonfinite[0]}",
            nonfinite_epochs=nonfinite,
            exploded_epoch=exploded,
        )
    if exploded is not None:
        return Divergence(
            confidence=0.9,
            reason=f"the loss exploded at epoch {exploded}",
            nonfinite_epochs=[],
            exploded_epoch=exploded,
        )
    collapse = _collapse(levels) or _unlearned(levels)
    if collapse is not None:
        confidence, reason = collapse
        return Divergence(confidence, reason, [], None)
    return None
