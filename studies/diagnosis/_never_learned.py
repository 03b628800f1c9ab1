"""Rule 3: a run whose accuracies never left chance is judged by its loss alone.

A network that never learned (a learning rate far too high, or broken data or labels) and a
slow start (a learning rate far too low) both sit at chance; what tells them apart is the
loss — jumpy, or smooth near log(K). Neither is a weak model (even a 1-channel net clears
chance) nor an overfitting one (nothing was fitted), so _rules.decide asks this first; the
arbiter (_arbiter.py) leaves such runs to it.
"""

from statistics import median

from studies.diagnosis._diverge import cleared_chance, loss_unstable
from studies.diagnosis._measure import Measures
from studies.diagnosis._result import Label
from studies.diagnosis._verdict import Verdict


def never_left_chance(m: Measures) -> bool:
    """No accuracy of the run ever cleared chance (_diverge.cleared_chance)."""
    chance, accuracies = m.chance_acc, m.levels.accuracies
    if chance is None or not accuracies:
        return False
    return not any(cleared_chance(acc, chance) for acc in accuracies)


def never_learned(m: Measures) -> Verdict | None:
    """A run whose accuracies never left chance is judged by its loss alone (issue 11, item
    3): a smooth loss near log(K) is a slow start (a learning rate far too low:
    undertrained); a loss that jumps around is a network that never learned (a learning rate
    far too high, or broken data: diverged). Neither is a weak model (even a 1-channel net
    clears chance) nor an overfitting one (nothing fitted), so this comes before both.

    The live check's divergence (_diverge.py) already caught the clear cases; this catches
    the rest once the judged curves are in, e.g. a loss that is not a per-sample
    cross-entropy and whose first epoch blew up within itself (its own median, the stand-in
    for log(K), then lies above the recent epochs)."""
    if not never_left_chance(m):
        return None
    chance_loss = m.chance_loss
    loss = m.levels.loss
    if loss is None:
        return None
    reference = chance_loss if chance_loss is not None else median(loss)
    if loss_unstable(loss, reference):
        return Verdict(
            Label.DIVERGED,
            0.7,
            "never learned: accuracy at chance level throughout, with a loss that jumps "
            "around instead of coming down; the learning rate is far too high, or the data "
            "or labels are broken",
        )
    if min(loss) < 0.9 * reference:
        return None
    return Verdict(
        Label.UNDERTRAINED,
        0.6,
        "never left chance level, with a smooth loss near log(num_classes): the learning "
        "rate is far too low (a learning rate far too high would make the loss jump)",
    )
