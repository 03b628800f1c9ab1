"""What a trial's run produced (``TrialSummary``) and the one definition of a study's best trial.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

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
    ranked = rank_trials(trials, maximize=maximize, candidate=candidate)
    return ranked[0] if ranked else None


def rank_trials(
    trials: Iterable[T], *, maximize: bool, candidate: Callable[[T], Candidate]
) -> list[T]:
    """The trials that can be best, best first, by the rule of ``best_trial`` (the others
    left out); the checkpoints' retention keeps the first k."""
    scored: list[tuple[float, int, T]] = []
    for trial in trials:
        c = candidate(trial)
        if c.complete and c.value is not None and math.isfinite(c.value):
            scored.append((-c.value if maximize else c.value, c.number, trial))
    return [item[2] for item in sorted(scored, key=lambda item: (item[0], item[1]))]


class RunFacts(BaseModel):
    """What the trainer learned of the dataset and device, known from a run's first epoch on."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    num_classes: int | None = None
    train_size: int | None = None
    val_size: int | None = None
    input_shape: list[int] | None = None  # (C, H, W)
    device: str | None = None


class TrialSummary(RunFacts):
    """The numbers of one trial's run that lists, the API and the study summary show
    (``TrialRow.summary``): written by the worker after every epoch (``summarize``), read
    everywhere else.

    Floats may be NaN or ±inf (a diverged run's last loss): the database keeps them
    (``db.LosslessJSON``) and the API serves them as ``null``.
    """

    # The run so far.
    final_train_loss: float | None = None
    final_train_acc: float | None = None
    final_val_loss: float | None = None
    final_val_acc: float | None = None
    best_val_acc: float | None = None
    best_epoch: int | None = None
    """Epoch (1-based) of best_val_acc."""
    best_val_loss: float | None = None
    objective_value: float | None = None
    """The study objective's best value over the epochs: best_val_acc, or best_val_loss when the
    study minimizes the validation loss."""


def summarize(
    records: Sequence[Mapping[str, Any]], *, facts: RunFacts, maximize: bool
) -> TrialSummary:
    """The summary of a run from its epoch records so far (``EpochRecord`` fields as a
    mapping, in epoch order).

    *maximize*: the study maximizes the validation accuracy (True) or minimizes the
    validation loss (False); that decides ``objective_value``. The ``final_*`` numbers are
    the last epoch's as they are (NaN kept); the best ones skip non-finite epochs, and the
    first epoch wins a tie for the best accuracy.
    """
    if not records:
        return TrialSummary(**facts.model_dump())
    last = records[-1]
    accs = [(float(r["val_acc"]), int(r["epoch"])) for r in records]
    finite_accs = [(acc, epoch) for acc, epoch in accs if math.isfinite(acc)]
    losses = [loss for loss in (float(r["val_loss"]) for r in records) if math.isfinite(loss)]
    best_val_acc: float | None = None
    best_epoch: int | None = None
    if finite_accs:
        best_val_acc, best_epoch = max(finite_accs, key=lambda ae: ae[0])
    best_val_loss = min(losses) if losses else None
    return TrialSummary(
        **facts.model_dump(),
        final_train_loss=last["train_loss"],
        final_train_acc=last["train_acc"],
        final_val_loss=last["val_loss"],
        final_val_acc=last["val_acc"],
        best_val_acc=best_val_acc,
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        objective_value=best_val_acc if maximize else best_val_loss,
    )
