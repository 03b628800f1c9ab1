"""The plan a recorded `lr` curve implies, for a run diagnosed without one.

A cosine or linear decay ends where its LR reaches zero, and the epochs recorded so far
already fix where that is: half a cosine from the peak at epoch p that has fallen to r of the
peak by epoch t ends at p + (t - p)·π / arccos(2r - 1), a linear one at p + (t - p) / (1 - r).
Without a plan, a run cut in the middle of such a decay looks like a run that is still going
for ever; with the implied end it is judged like a run in progress with its plan (the gain by
the end, what the epochs left will show). Only a decay one of the two shapes explains is
read: the end the two halves of the decay imply must agree. A constant LR, a step decay (the
next step cannot be seen), an exponential decay (it never ends) or an LR already annealed imply
nothing, and the run is judged as before.
"""

import itertools
import math
from typing import Final

from studies.diagnosis._plan import MAX_CURVE_EPOCHS, Plan
from studies.diagnosis._schedule import Schedule

# The decay must be visible: the LR at most this share of its peak ...
VISIBLE_DECAY: Final = 0.95
# ... and the ends implied by the middle and the last epoch of the decay agree within this
# share of the decay's length (a cosine read as linear, or the reverse, misses by ~30%+).
AGREEMENT: Final = 0.1


def _cosine_end(peak: int, epoch: int, share: float) -> float:
    return peak + (epoch - peak) * math.pi / math.acos(2.0 * share - 1.0)


def _linear_end(peak: int, epoch: int, share: float) -> float:
    return peak + (epoch - peak) / (1.0 - share)


def _cosine_rate(peak: int, end: float, epoch: int) -> float:
    progress = min(1.0, (epoch - peak) / (end - peak))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _linear_rate(peak: int, end: float, epoch: int) -> float:
    return max(0.0, 1.0 - (epoch - peak) / (end - peak))


_SHAPES: Final = ((_cosine_end, _cosine_rate), (_linear_end, _linear_rate))


def implied_plan(lr: list[float | None] | None, schedule: Schedule) -> Plan | None:
    """The plan the recorded *lr* curve implies (its *schedule* already found), or None."""
    if not lr or any(v is None for v in lr) or schedule.annealed:
        return None
    rates = [float(v) for v in lr if v is not None]
    top = max(rates)
    peak = max(range(len(rates)), key=rates.__getitem__)  # the first epoch at the top
    last = len(rates) - 1
    if top <= 0.0 or schedule.changed_within(peak + 1, len(rates)) or last - peak < 2:
        return None
    decay = rates[peak:]
    if any(later > earlier for earlier, later in itertools.pairwise(decay)):
        return None  # not a monotone decay: a restart or a noisy LR
    middle = (peak + last) // 2
    share_last, share_middle = rates[last] / top, rates[middle] / top
    if share_last > VISIBLE_DECAY or share_middle > VISIBLE_DECAY or share_last <= 0.0:
        return None
    for end_of, rate_of in _SHAPES:
        end, check = end_of(peak, last, share_last), end_of(peak, middle, share_middle)
        if abs(end - check) > AGREEMENT * (end - peak):
            continue
        # The LR recorded for an epoch is its last step's: the decay ends within the epoch
        # after the one where the formula reaches 0.
        epochs = min(MAX_CURVE_EPOCHS, max(len(rates) + 1, math.ceil(end) + 1))
        future = [top * rate_of(peak, end, epoch) for epoch in range(len(rates), epochs)]
        return Plan(epochs=epochs, lr=[*rates, *future])
    return None
