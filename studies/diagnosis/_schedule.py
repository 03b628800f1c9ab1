"""Learning-rate schedules: where the `lr` curve changes abruptly, the run starts a new segment.

A step decay, a warm restart or the end of a warm-up changes how the curves move for reasons
that are the schedule's, not the model's: the loss drops right after a decay and rises right
after a restart. The diagnoser therefore judges the last segment (the run since the last
abrupt LR change) and reads a sudden drop that follows an LR change as the schedule.

An *abrupt* change: the LR moves by at least ABRUPT_RATIO in one epoch, and by at least
SMOOTHNESS times more (in log ratio) than it moved in each of the epochs before. Smooth
schedules (cosine, linear decay, a warm-up ramp, exponential decay) change by similar
ratios from one epoch to the next, even near the end of a cosine where the ratios grow large
but gradually; a step is a jump out of a flat or slowly moving stretch. An LR that rises
after falling (a warm restart) is abrupt whatever came before.
"""

import itertools
import math
from dataclasses import dataclass
from typing import Final

ABRUPT_RATIO: Final = 1.3
# An LR that ended at this share of its peak or less has been annealed (cosine to ~0, the
# last steps of a step decay): the schedule has run its course.
ANNEALED_SHARE: Final = 0.1
SMOOTHNESS: Final = 3.0


@dataclass(frozen=True)
class Schedule:
    """The abrupt LR changes of a run, as 0-based epoch indices where a segment starts."""

    change_points: tuple[int, ...]
    warmup_end: int  # 0-based index of the first epoch after the warm-up ramp (0: none)
    annealed: bool = False  # the LR ended at ANNEALED_SHARE of its peak or less

    @property
    def last_start(self) -> int:
        """Where the segment the diagnoser judges starts (0: the whole run)."""
        return max((self.warmup_end, *self.change_points))

    def changed_within(self, start: int, end: int) -> bool:
        """Whether an abrupt LR change happened at an index in [start, end)."""
        return any(start <= point < end for point in self.change_points)


NO_SCHEDULE: Final = Schedule((), 0)


def _log_ratios(rates: list[float]) -> list[float]:
    """log(lr[t] / lr[t-1]) for t ≥ 1: +inf for a rise from zero (a warm-up that starts at
    0); 0 where the LR stays at or falls to zero (a cosine ends at 0: annealing, not a step)."""
    out = []
    for before, now in itertools.pairwise(rates):
        if before > 0 and now > 0:
            out.append(math.log(now / before))
        else:
            out.append(math.inf if now > before else 0.0)
    return out


def find_schedule(lr: list[float | None] | None) -> Schedule:
    """The segments of the `lr` curve; no curve (or a constant one) is one segment."""
    if not lr or any(v is None for v in lr):
        return NO_SCHEDULE
    rates = [float(v) for v in lr if v is not None]
    ratios = _log_ratios(rates)
    if not any(ratios):
        return NO_SCHEDULE
    # A warm-up: the LR rises from the first epoch on; it ends at the first epoch at the top
    # (ratios[i] is the change into epoch index i + 1, so that epoch is the count of rises).
    warmup_end = 0
    while warmup_end < len(ratios) and ratios[warmup_end] > 0:
        warmup_end += 1
    threshold = math.log(ABRUPT_RATIO)
    points = []
    for index in range(max(1, warmup_end), len(ratios)):
        step = ratios[index]
        if abs(step) < threshold:
            continue
        before = ratios[max(0, index - 2) : index]
        restart = step > 0 and any(r < 0 for r in ratios[:index])
        jump = all(abs(step) >= SMOOTHNESS * abs(r) for r in before)
        if restart or jump:
            points.append(index + 1)
    annealed = rates[-1] <= ANNEALED_SHARE * max(rates)
    return Schedule(tuple(points), warmup_end, annealed)
