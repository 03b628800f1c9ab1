"""Diagnose a whole study: labels by learning rate, the LR window and the next study to run.

The seed's recipe, step 1 then step 2: a learning-rate search brackets the usable range
(around the best trial: the highest LR that did not diverge, the lowest that was not
undertrained); the best trial's label then says what to change next: refine the LR around it
when it is healthy, train longer or faster when it is undertrained, regularize when it
overfits, grow the model when it underfits. studies.followup turns that move into a study
spec this server accepts as is.

The best trial is ``studies.results.best_trial``'s, from the same numbers the API ranks by
(complete trials, the objective's best value), so the API and the summary name one trial.
"""

import math
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from studies import followup
from studies.diagnosis._result import Diagnosis, Label
from studies.followup import Anchor, Followup
from studies.results import Candidate, best_trial
from studies.spec import SpecLimits, StudySpec


class TrialOutcome(BaseModel):
    """What the study summary needs to know about one trial."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    number: int
    params: dict[str, Any] = Field(description="The trial's parameters; at least `lr`.")
    state: str = Field(description="The trial's state as stored (complete, pruned, ...).")
    complete: bool = Field(
        description="Ran to its last epoch (Optuna's COMPLETE; a diverged run is pruned): "
        "only complete trials can be the best, as in the API."
    )
    objective_value: float | None = None
    """The study objective's best value over the run's epochs (the trial summary's
    objective_value), what the best trial is chosen by."""
    diagnosis: Diagnosis | None = None
    final_val_acc: float | None = None
    best_val_acc: float | None = None
    final_val_loss: float | None = None

    @field_validator("params")
    @classmethod
    def _has_lr(cls, params: dict[str, Any]) -> dict[str, Any]:
        lr = params.get("lr")
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise ValueError(f"params must hold a positive number `lr`, got lr={lr!r}")
        return params

    @property
    def lr(self) -> float:
        return float(self.params["lr"])

    @property
    def label(self) -> Label | None:
        return None if self.diagnosis is None else self.diagnosis.label


class LrLabels(BaseModel):
    """The labels of every diagnosed trial run at one learning rate."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    lr: float
    labels: list[Label]
    trials: list[int]


class LrWindow(BaseModel):
    """The usable learning rates the search found."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    high: float | None = None
    """Highest LR that did not diverge, in the unbroken run of such LRs that holds the best
    trial."""
    low: float | None = None
    """Lowest LR that was neither undertrained nor diverged, in the unbroken run of such LRs next
    to the best trial (a slow LR ends it)."""


class StudySummary(BaseModel):
    """The verdict on a study, with the follow-up study to submit."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    trials: int = Field(description="Trials diagnosed.")
    label_counts: dict[Label, int]
    labels_by_lr: list[LrLabels]
    best_trial: int | None
    best_lr: float | None
    best_value: float | None = Field(description="The objective's best value (best trial).")
    best_label: Label | None
    lr_window: LrWindow
    next_step: str
    followup_spec: StudySpec | None = Field(
        description="The next study, valid under this server's limits and ready to submit; "
        "null when none fits them (next_step says why)."
    )


# Which follow-up each verdict on the best trial calls for (the seed's step 2).
_MOVES: dict[Label | None, Callable[[StudySpec, Anchor, SpecLimits], Followup]] = {
    Label.HEALTHY: followup.refine,
    Label.UNDERTRAINED: followup.train_longer,
    Label.OVERFITTING: followup.regularize,
    Label.UNDERFITTING: followup.grow,
    Label.INCONCLUSIVE: followup.rerun_longer,
    None: followup.refine,  # a complete trial without a stored diagnosis: refine its LR
}


def _candidate(trial: TrialOutcome) -> Candidate:
    return Candidate(number=trial.number, complete=trial.complete, value=trial.objective_value)


def _lr_window(diagnosed: list[TrialOutcome], best: TrialOutcome | None) -> LrWindow:
    """The usable learning rates, grown outwards from the best trial's one LR at a time.

    An LR is stable when some trial at it did not diverge, fast enough when some trial at it
    was neither undertrained nor diverged. Walking outwards stops at the first LR that
    fails, so a stray run far away (a dead 1e-6 run past undertrained 1e-5 … 1e-3) cannot
    stretch the window over LRs that did not work.
    """
    if best is None:
        return LrWindow()
    labels: dict[float, set[Label | None]] = {best.lr: {best.label}}
    for trial in diagnosed:
        labels.setdefault(trial.lr, set()).add(trial.label)
    lrs = sorted(labels)
    here = lrs.index(best.lr)

    def stable(i: int) -> bool:
        return bool(labels[lrs[i]] - {Label.DIVERGED})

    def fast(i: int) -> bool:
        return bool(labels[lrs[i]] - {Label.DIVERGED, Label.UNDERTRAINED})

    top = here
    while top + 1 < len(lrs) and stable(top + 1):
        top += 1
    if fast(here):
        bottom = here
        while bottom > 0 and fast(bottom - 1):
            bottom -= 1
        return LrWindow(high=lrs[top], low=lrs[bottom])
    # The best itself was too slow: the nearest fast-enough LR above it, if any is stable.
    faster = [lrs[i] for i in range(here + 1, top + 1) if fast(i)]
    return LrWindow(high=lrs[top], low=faster[0] if faster else None)


def _plan(
    spec: StudySpec,
    best: TrialOutcome | None,
    diagnosed: list[TrialOutcome],
    limits: SpecLimits,
) -> Followup:
    """The follow-up study for this outcome, within the server's *limits*."""
    if not diagnosed:
        return followup.wait(spec, limits)
    diverged = [t.lr for t in diagnosed if t.label is Label.DIVERGED]
    if len(diverged) == len(diagnosed) or (best is not None and best.label is Label.DIVERGED):
        return followup.search_lower(spec, min(diverged), limits)
    if best is None:
        return followup.rerun(spec, limits)
    # Explore upwards, but stay below the geometric middle to the nearest LR that diverged.
    diverged_above = [lr for lr in diverged if lr > best.lr]
    anchor = Anchor(
        lr=best.lr,
        ceiling=math.sqrt(best.lr * min(diverged_above)) if diverged_above else math.inf,
        best_epoch=None if best.diagnosis is None else best.diagnosis.best_epoch,
    )
    return _MOVES[best.label](spec, anchor, limits)


def diagnose_study(
    trials: Sequence[TrialOutcome], *, spec: StudySpec, limits: SpecLimits | None = None
) -> StudySummary:
    """Summarize a study from its trials' diagnoses.

    *spec* is the study's spec; *limits* are the server's (default: the spec's hard caps),
    which the follow-up spec is made to fit.
    """
    diagnosed = [t for t in trials if t.diagnosis is not None]
    by_lr: dict[float, list[TrialOutcome]] = {}
    for trial in sorted(diagnosed, key=lambda t: (t.lr, t.number)):
        by_lr.setdefault(trial.lr, []).append(trial)
    labels_by_lr = [
        LrLabels(
            lr=lr,
            labels=[t.label for t in group if t.label is not None],
            trials=[t.number for t in group],
        )
        for lr, group in by_lr.items()
    ]
    best = best_trial(trials, maximize=spec.objective.direction == "maximize", candidate=_candidate)
    plan = _plan(spec, best, diagnosed, limits or SpecLimits())
    return StudySummary(
        trials=len(diagnosed),
        label_counts=dict(Counter(t.label for t in diagnosed if t.label is not None)),
        labels_by_lr=labels_by_lr,
        best_trial=None if best is None else best.number,
        best_lr=None if best is None else best.lr,
        best_value=None if best is None else best.objective_value,
        best_label=None if best is None else best.label,
        lr_window=_lr_window(diagnosed, best),
        next_step=plan.next_step,
        followup_spec=plan.spec,
    )
