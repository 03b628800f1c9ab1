"""Divergence: the one verdict that must be reached within an epoch, live.

Three signatures of a learning rate far too high (the seed's step 1):
- a non-finite loss (the trainer stops at once and records it as null/NaN);
- an exploded loss: finite but an order of magnitude above a uniform guess or above where
  the run started;
- a collapse: accuracy at chance level with a loss at or above log(num_classes), either after
  the run had learned something or without the steady decline of a merely slow (low-LR) run.
"""

from dataclasses import dataclass
from statistics import median

from studies.diagnosis._curves import Curves
from studies.diagnosis._measure import chance_levels, filled
from studies.diagnosis._stats import grade, kendall_tau

# A loss this many times a uniform guess's loss (log C), or the first epoch's loss, has
# exploded: no healthy run's epoch-mean loss climbs an order of magnitude above where it began.
EXPLODE_FACTOR = 10.0
# Without num_classes there is no chance loss; cross-entropy above this needs p(true) < e^-50.
EXPLODE_ABSOLUTE = 50.0
# "At chance": accuracy within this fraction of the distance from chance to perfect.
CHANCE_MARGIN = 0.1
# "Had learned something": accuracy once this far (same scale) above chance.
LEARNED_MARGIN = 0.3
# A slow low-LR run's loss falls nearly every epoch (tau close to -1); a collapsed one does not.
STEADY_DECLINE_TAU = -0.6
COLLAPSE_WINDOW = 3
# A run that never learned counts as stuck (not slow) only after this many epochs.
STUCK_MIN_EPOCHS = 4


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
    accuracy = curves.train_acc or curves.val_acc
    loss = curves.train_loss or curves.val_loss
    if chance is None or accuracy is None or curves.epochs < COLLAPSE_WINDOW:
        return None
    acc = filled(accuracy)
    scale = 1.0 - chance
    recent_acc = median(acc[-COLLAPSE_WINDOW:])
    if max(acc[-COLLAPSE_WINDOW:]) > chance + CHANCE_MARGIN * scale:
        return None  # every one of the last epochs must sit at chance
    earlier = acc[:-COLLAPSE_WINDOW]
    learned_before = bool(earlier) and max(earlier) >= chance + LEARNED_MARGIN * scale
    if loss is not None and chance_loss is not None:
        losses = filled(loss)
        recent_loss = median(losses[-COLLAPSE_WINDOW:])
        if recent_loss < 0.95 * chance_loss:
            return None
        declining = kendall_tau(losses)
        if not learned_before and (
            curves.epochs < STUCK_MIN_EPOCHS or declining <= STEADY_DECLINE_TAU
        ):
            return None  # near chance but falling steadily (or too soon to tell): too slow
        confidence = 0.7 + 0.25 * max(float(learned_before), grade(declining, -0.5, 0.3))
        return confidence, (
            f"accuracy collapsed to chance level ({recent_acc:.3f} vs 1/{curves.num_classes}) "
            f"with a loss of {recent_loss:.3f} ≥ log({curves.num_classes}) = {chance_loss:.3f}"
        )
    rising = kendall_tau(acc)
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
