"""The plan a recorded `lr` curve implies, for a run diagnosed without one.

A cosine or linear decay ends where its LR reaches zero, and the epochs recorded so far
already fix where that is: half a cosine from the peak at epoch p that has fallen to r of the
peak by epoch t ends at p + (t - p)·π / arccos(2r - 1), a linear one at p + (t - p) / (1 - r).
Without a plan, a run cut in the middle of such a decay looks like a run that is still going
for ever; with the implied end it is judged like a run in progress with its plan (the gain by
the end, what the epochs left will show). Only a decay one of the two shapes explains is
read: the shape fitted through two epochs of the decay must place two more. A constant LR, a
step decay (the next step cannot be seen), an exponential decay (it never ends) or an LR
already annealed imply nothing, and the run is judged as before. Known limit: over a short
window a slow exponential decay (×0.97 an epoch) is indistinguishable from a linear one, and
is read as one.
"""

import itertools
import math
from typing import Final

from studies.diagnosis._plan import MAX_CURVE_EPOCHS, Plan
from studies.diagnosis._schedule import Schedule

# The decay must be visible: the LR at most this share of its peak by the middle epoch of the
# decay (before that, nothing tells a cosine from a linear or an exponential decay).
VISIBLE_DECAY: Final = 0.95
# The shape fitted through the middle and last epochs must place two more epochs (a quarter
# and three quarters of the way) within this much of their progress (0 at the peak, 1 at the
# end); of the two shapes, the closer wins. An exponential decay misses both.
AGREEMENT: Final = 0.03


def _cosine_progress(share: float) -> float:
    return math.acos(2.0 * share - 1.0) / math.pi


def _linear_progress(share: float) -> float:
    return 1.0 - share


def _cosine_share(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _linear_share(progress: float) -> float:
    return max(0.0, 1.0 - progress)


_SHAPES: Final = ((_cosine_progress, _cosine_share), (_linear_progress, _linear_share))


def implied_plan(lr: list[float | None] | None, schedule: Schedule) -> Plan | None:
    """The plan the recorded *lr* curve implies (its *schedule* already found), or None.

    Each shape maps the LR's share of its peak to the progress through the decay; the decay
    starts at epoch a and ends at epoch T (progress = (epoch - a) / (T - a)), both solved
    from the middle and the last epoch (the LR recorded for an epoch is its last step's, so
    the top recorded is already a little into the decay).
    """
    if not lr or any(v is None for v in lr) or schedule.annealed:
        return None
    rates = [float(v) for v in lr if v is not None]
    top = max(rates)
    peak = max(range(len(rates)), key=rates.__getitem__)  # the first epoch at the top
    last = len(rates) - 1
    if top <= 0.0 or schedule.changed_within(peak + 1, len(rates)) or last - peak < 4:
        return None
    decay = rates[peak:]
    if any(later > earlier for earlier, later in itertools.pairwise(decay)):
        return None  # not a monotone decay: a restart or a noisy LR
    middle = (peak + last) // 2
    checks = ((3 * peak + last) // 4, (middle + last) // 2)
    if rates[middle] / top > VISIBLE_DECAY or rates[last] <= 0.0:
        return None
    fits = []
    for progress_of, share_of in _SHAPES:
        at_middle, at_last = progress_of(rates[middle] / top), progress_of(rates[last] / top)
        if not 0.0 < at_middle < at_last < 1.0:
            continue
        start = (last * at_middle - middle * at_last) / (at_middle - at_last)
        end = start + (last - start) / at_last
        misfit = max(
            abs((epoch - start) / (end - start) - progress_of(rates[epoch] / top))
            for epoch in checks
        )
        fits.append((misfit, start, end, share_of))
    if not fits or min(fits)[0] > AGREEMENT:
        return None
    _, start, end, share_of = min(fits, key=lambda fit: fit[0])
    # The formula reaches 0 at epoch index `end`; the plan holds that epoch.
    epochs = min(MAX_CURVE_EPOCHS, max(len(rates) + 1, round(end) + 1))
    future = [
        top * share_of((epoch - start) / (end - start)) for epoch in range(len(rates), epochs)
    ]
    return Plan(epochs=epochs, lr=[*rates, *future])
