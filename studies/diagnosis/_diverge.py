"""Divergence: the one verdict that must be reached within an epoch, live.

Three signatures of a learning rate far too high (the seed's step 1):
- a non-finite loss (the trainer stops at once and records it as null/NaN);
- an exploded loss: finite but an order of magnitude above a uniform guess or above where
  the run started;
- a collapse: every accuracy at chance level with a loss at or above log(num_classes), either
  after the run had learned something, or (never having learned) after a sign of instability
  — a loss once well above log(num_classes), or a loss that jumps around. A learning rate far
  too low also sits at chance with a loss of log(num_classes), but smooth and never above it.
"""

from dataclasses import dataclass
from statistics import median

from studies.diagnosis._curves import Curves
from studies.diagnosis._measure import chance_levels, filled
from studies.diagnosis._stats import grade, kendall_tau, noise_sigma

# A loss this many times a uniform guess's loss (log C), or the first epoch's loss, has
# exploded: no healthy run's epoch-mean loss climbs an order of magnitude above where it began.
EXPLODE_FACTOR = 10.0
# Without num_classes there is no chance loss; cross-entropy above this needs p(true) < e^-50.
EXPLODE_ABSOLUTE = 50.0
# "At chance": accuracy within this fraction of the distance from chance to perfect.
CHANCE_MARGIN = 0.1
# "Had learned something": accuracy once this far (same scale) above chance.
LEARNED_MARGIN = 0.3
COLLAPSE_WINDOW = 3
# A run that never learned counts as stuck (not slow) only after this many epochs, and only
# with a loss once this many times log(C), or epoch-to-epoch loss noise of this fraction of it.
STUCK_MIN_EPOCHS = 4
UNSTABLE_LOSS = 1.5
UNSTABLE_NOISE = 0.01


@dataclass(frozen=True)
class Divergence:
    """Why a run counts as diverged."""

    confidence: float
    reason: str
    nonfinite_epochs: list[int]
    exploded_epoch: int | None


def _nonfinite_epochs(curves: Curves) -> list[int]:
    bad: set[int] = set()
    for values in (curves.train_loss, curves.val_loss):
        bad.update(i + 1 for i, v in enumerate(values or ()) if v is None)
    return sorted(bad)


def _exploded_epoch(values: list[float | None] | None, chance_loss: float | None) -> int | None:
    if not values or values[0] is None:
        return None
    first = values[0]
    limit = EXPLODE_FACTOR * chance_loss if chance_loss is not None else EXPLODE_ABSOLUTE
    for index, value in enumerate(values):
        if value is None:
            continue
        worse_than_guessing = chance_loss is None or value >= chance_loss
        if value >= limit or (
            index > 0 and value >= EXPLODE_FACTOR * first and worse_than_guessing
        ):
            return index + 1
    return None


def _collapse(curves: Curves) -> tuple[float, str] | None:
    chance, chance_loss = chance_levels(curves)
    accuracies = [filled(a) for a in (curves.train_acc, curves.val_acc) if a is not None]
    if chance is None or not accuracies or curves.epochs < COLLAPSE_WINDOW:
        return None
    scale = 1.0 - chance
    # Every recent epoch of every accuracy at chance: a model whose validation accuracy is
    # well above chance has learned, whatever dropout does to its training accuracy.
    if any(max(acc[-COLLAPSE_WINDOW:]) > chance + CHANCE_MARGIN * scale for acc in accuracies):
        return None
    recent_acc = median(accuracies[0][-COLLAPSE_WINDOW:])
    learned_before = any(
        max(acc[:-COLLAPSE_WINDOW], default=0.0) >= chance + LEARNED_MARGIN * scale
        for acc in accuracies
    )
    loss = curves.train_loss or curves.val_loss
    if loss is not None and chance_loss is not None:
        losses = filled(loss)
        recent_loss = median(losses[-COLLAPSE_WINDOW:])
        if recent_loss < 0.95 * chance_loss:
            return None
        # The trend of the recent half: a blown-up first epoch must not pass for a decline.
        declining = kendall_tau(losses[len(losses) // 2 :])
        if not learned_before:
            # Never learned: diverged only with a sign of instability (a loss well above a
            # uniform guess, or a loss that jumps around); a learning rate far too low sits
            # at exactly log(C), smooth, and must not be stopped.
            unstable = (
                max(losses) >= UNSTABLE_LOSS * chance_loss
                or noise_sigma(losses) >= UNSTABLE_NOISE * chance_loss
            )
            if curves.epochs < STUCK_MIN_EPOCHS or not unstable:
                return None
        confidence = 0.7 + 0.25 * max(float(learned_before), grade(declining, -0.5, 0.3))
        return confidence, (
            f"accuracy collapsed to chance level ({recent_acc:.3f} vs 1/{curves.num_classes}) "
            f"with a loss of {recent_loss:.3f} ≥ log({curves.num_classes}) = {chance_loss:.3f}"
        )
    rising = kendall_tau(accuracies[0])
    if not learned_before and (curves.epochs < STUCK_MIN_EPOCHS + 1 or rising >= 0.5):
        return None
    return 0.7, f"accuracy stuck at chance level ({recent_acc:.3f} vs 1/{curves.num_classes})"


def find_divergence(curves: Curves) -> Divergence | None:
    """The divergence verdict for *curves*, or None when the run has not diverged."""
    nonfinite = _nonfinite_epochs(curves)
    _, chance_loss = chance_levels(curves)
    exploded = _exploded_epoch(curves.train_loss, chance_loss) or _exploded_epoch(
        curves.val_loss, chance_loss
    )
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
    collapse = _collapse(curves)
    if collapse is not None:
        confidence, reason = collapse
        return Divergence(confidence, reason, [], None)
    return None
