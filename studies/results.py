"""The one definition of a study's best trial.

The API's ``StudyPublic.best_trial``, the study summary's ``best_trial`` and the worker's
"best of the study so far" (the diagnoser's study context) all pick through ``best_trial``,
so they cannot name different trials. Pure and light (no database, no Optuna, no torch):
``studies.diagnosis`` imports it.

Optuna's rule, which the dashboard shows: only COMPLETE trials count (a diverged run is
stored as pruned, a trial cut by the pruner too), by the objective's best value over the
run's epochs (the highest validation accuracy, or the lowest validation loss); a tie goes
to the lower trial number.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Candidate:
    """What deciding the best trial needs to know of one trial."""

    number: int
    complete: bool
    value: float | None  # the objective's best value over the run's epochs; None if none finite


def best_trial(
    trials: Iterable[T], *, maximize: bool, candidate: Callable[[T], Candidate]
) -> T | None:
    """The best of ``trials`` by the objective (see the module docstring), or None."""
    scored: list[tuple[float, int, T]] = []
    for trial in trials:
        c = candidate(trial)
        if c.complete and c.value is not None and math.isfinite(c.value):
            scored.append((-c.value if maximize else c.value, c.number, trial))
    if not scored:
        return None
    return min(scored, key=lambda item: (item[0], item[1]))[2]
