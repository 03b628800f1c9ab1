"""Secondary problems: from the trainer's health statistics and from the loss's shape."""

from itertools import pairwise
from statistics import median

from studies.diagnosis._curves import Curves
from studies.diagnosis._measure import Levels
from studies.diagnosis._result import Finding, FindingKind, Label

# The first layer's gradient this many times smaller than the last layer's: vanishing.
VANISHING_RATIO = 1e-2
# Any gradient norm this many times the early epochs' median (or non-finite): exploding.
EXPLODING_GROWTH = 100.0
# A ReLU network with more than this fraction of units never active has dying ReLUs.
DEAD_RELU_FRACTION = 0.5
# Oscillation: at least this fraction of epochs raise the training loss, by steps of at least
# this fraction of the loss's whole range and of its typical level (a converged run wiggles
# by far less).
OSCILLATION_UP_FRACTION = 0.3
OSCILLATION_STEP = 0.05
# A run still falling steadily that has not even halved its loss: the LR is likely too low.
LOW_LR_LOSS_RATIO = 0.5


def _finite(values: list[float | None] | None) -> list[float]:
    return [v for v in values or () if v is not None]


def _vanishing(curves: Curves) -> Finding | None:
    pairs = [
        first / last
        for first, last in zip(
            curves.grad_norm_first or (), curves.grad_norm_last or (), strict=False
        )
        if first is not None and last
    ]
    if not pairs:
        return None
    ratio = median(pairs)
    if ratio >= VANISHING_RATIO:
        return None
    return Finding(
        kind=FindingKind.VANISHING_GRADIENTS,
        message=(
            f"the first layer's gradient is {ratio:.1e} times the last layer's: gradients "
            "vanish on the way down (use ReLU, batch norm, MSRA init or residual connections)"
        ),
        value=ratio,
    )


def _exploding(curves: Curves) -> Finding | None:
    if curves.grad_norm is None:
        return None
    norms = _finite(curves.grad_norm)
    if len(norms) < len(curves.grad_norm):
        return Finding(
            kind=FindingKind.EXPLODING_GRADIENTS,
            message="the gradient norm became non-finite",
        )
    if len(norms) < 2:
        return None
    early = median(norms[:3])
    peak = max(norms)
    if early <= 0 or peak < EXPLODING_GROWTH * early:
        return None
    return Finding(
        kind=FindingKind.EXPLODING_GRADIENTS,
        message=f"the gradient norm grew to {peak:.3g}, {peak / early:.0f} times its start",
        value=peak,
    )


def _dying_relu(curves: Curves) -> Finding | None:
    fractions = _finite(curves.dead_relu_fraction)
    if not fractions:
        return None
    recent = median(fractions[-3:])
    if recent <= DEAD_RELU_FRACTION:
        return None
    return Finding(
        kind=FindingKind.DYING_RELU,
        message=(
            f"{recent:.0%} of ReLU units never fire: lower the LR, or use leaky ReLU and MSRA init"
        ),
        value=recent,
    )


def _oscillating(curves: Curves) -> Finding | None:
    losses = _finite(curves.train_loss) or _finite(curves.val_loss)
    if len(losses) < 5:
        return None
    span = max(losses) - min(losses)
    steps = [b - a for a, b in pairwise(losses)]
    rises = [s for s in steps if s > 0]
    if span <= 0 or len(rises) < OSCILLATION_UP_FRACTION * len(steps):
        return None
    size = median(rises) / span
    # Also large next to the loss itself: a flat loss (a stuck run) has a tiny range, and
    # its noise would otherwise read as oscillation.
    if size < OSCILLATION_STEP or median(rises) < OSCILLATION_STEP * median(losses):
        return None
    return Finding(
        kind=FindingKind.OSCILLATING_LOSS,
        message=(
            f"the loss went up in {len(rises)} of {len(steps)} epochs, by {size:.0%} of its range "
            "per rise"
        ),
        value=size,
    )


def _base_lr(curves: Curves) -> float | None:
    rates = _finite(curves.lr)
    return max(rates) if rates else None


def find_problems(levels: Levels, label: Label) -> list[Finding]:
    """Every secondary problem visible in the run of *levels*, given the run's *label*."""
    curves = levels.curves
    findings = [
        f
        for f in (_vanishing(curves), _exploding(curves), _dying_relu(curves), _oscillating(curves))
        if f is not None
    ]
    lr = _base_lr(curves)
    at = f" ({lr:.3g})" if lr is not None else ""
    kinds = {f.kind for f in findings}
    if label is Label.DIVERGED or FindingKind.OSCILLATING_LOSS in kinds:
        findings.append(
            Finding(
                kind=FindingKind.LR_TOO_HIGH,
                message=f"the learning rate{at} is likely too high",
                value=lr,
            )
        )
    elif label is Label.UNDERTRAINED and levels.train_loss is not None:
        losses = levels.train_loss
        # Only for a loss with a floor at zero (cross-entropy, MSE): "halved" means nothing
        # for a negative log-likelihood.
        if min(losses) > 0 and losses[-1] >= LOW_LR_LOSS_RATIO * losses[0]:
            findings.append(
                Finding(
                    kind=FindingKind.LR_TOO_LOW,
                    message=(
                        f"the training loss fell only to {losses[-1] / losses[0]:.0%} of its "
                        f"first epoch's: the learning rate{at} is likely too low"
                    ),
                    value=lr,
                )
            )
    return findings
