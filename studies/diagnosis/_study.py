"""Diagnose a whole study: labels by learning rate, the LR window and the next study to run.

The seed's recipe, step 1 then step 2: a learning-rate search brackets the usable range
(the highest LR that did not diverge, the lowest that was not undertrained); the best trial's
label then says what to change next: refine the LR around it when it is healthy, train longer
or faster when it is undertrained, regularize when it overfits, grow the model when it
underfits. The next step is returned as a complete study spec the user can submit as is.
"""

import copy
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from studies.diagnosis._result import Diagnosis, Label

# Mirrors studies.spec limits (not imported: this package stays pydantic + stdlib only).
SPEC_MAX_EPOCHS = 1000
SPEC_MAX_WIDTH = 1024
SPEC_NAME_MAX = 80
DEFAULT_WEIGHT_DECAY = 5e-4


class TrialOutcome(BaseModel):
    """What the study summary needs to know about one trial."""

    model_config = ConfigDict(frozen=True)

    number: int
    params: dict[str, Any] = Field(description="The trial's parameters; at least `lr`.")
    state: str = Field(description="The trial's state as stored (completed, diverged, ...).")
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

    model_config = ConfigDict(frozen=True)

    lr: float
    labels: list[Label]
    trials: list[int]


class LrWindow(BaseModel):
    """The usable learning rates the search found."""

    model_config = ConfigDict(frozen=True)

    high: float | None = Field(default=None, description="Highest LR that did not diverge.")
    low: float | None = Field(default=None, description="Lowest LR that was not undertrained.")


class StudySummary(BaseModel):
    """The verdict on a study, with the follow-up study to submit."""

    model_config = ConfigDict(frozen=True)

    trials: int = Field(description="Trials diagnosed.")
    label_counts: dict[Label, int]
    labels_by_lr: list[LrLabels]
    best_trial: int | None
    best_lr: float | None
    best_value: float | None = Field(description="The objective's best value (best trial).")
    best_label: Label | None
    lr_window: LrWindow
    next_step: str
    followup_spec: dict[str, Any]


def _round_lr(lr: float) -> float:
    return float(f"{lr:.3g}")


def _log_grid(low: float, high: float, points: int) -> list[float]:
    """*points* log-spaced LRs from *low* to *high*, rounded, largest first, unique."""
    if points == 1 or high <= low:
        return [_round_lr(high)]
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    values = {_round_lr(10 ** (math.log10(low) + i * step)) for i in range(points)}
    return sorted((v for v in values if 0 < v <= 10.0), reverse=True)


def _objective_value(trial: TrialOutcome, objective: str) -> float | None:
    if objective == "val_loss":
        if trial.diagnosis is not None and trial.diagnosis.evidence.min_val_loss is not None:
            return trial.diagnosis.evidence.min_val_loss
        return trial.final_val_loss
    return trial.best_val_acc if trial.best_val_acc is not None else trial.final_val_acc


def _best(trials: list[TrialOutcome], objective: str) -> TrialOutcome | None:
    scored = [
        (value, t)
        for t in trials
        if t.label is not Label.DIVERGED
        and (value := _objective_value(t, objective)) is not None
        and math.isfinite(value)
    ]
    if not scored:
        return None
    sign = 1.0 if objective == "val_loss" else -1.0
    return min(scored, key=lambda pair: (sign * pair[0], pair[1].number))[1]


def _followup_name(spec: dict[str, Any]) -> str:
    base = spec.get("name") or str(spec.get("dataset", "study"))
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "study"
    suffix = "-next"
    return base[: SPEC_NAME_MAX - len(suffix)] + suffix


def _section(spec: dict[str, Any], name: str) -> dict[str, Any]:
    section = spec.get(name)
    if not isinstance(section, dict):
        section = {}
        spec[name] = section
    return section


def _set_grid(spec: dict[str, Any], grid: list[float]) -> None:
    search = _section(spec, "search")
    search.update(
        sampler="grid",
        grid=grid,
        lr_low=min(grid),
        lr_high=max(grid),
        points_per_decade=None,
    )
    search.pop("n_trials", None)  # only random/tpe take n_trials


def _plan(
    spec: dict[str, Any],
    best: TrialOutcome | None,
    diagnosed: list[TrialOutcome],
) -> str:
    """Edit *spec* (a deep copy) into the follow-up study; return the next step in words."""
    train, model, data = _section(spec, "train"), _section(spec, "model"), _section(spec, "data")
    epochs = int(train.get("epochs", 10))
    if not diagnosed:
        return "No trial has been diagnosed yet: wait for the study's trials to finish."
    if best is None:
        lowest = min(t.lr for t in diagnosed)
        _set_grid(spec, _log_grid(lowest / 1000, lowest / 10, 3))
        model["norm"] = "batch"
        train["grad_clip"] = 1.0
        return (
            f"Every learning rate diverged, down to {lowest:g}: search 10 to 1000 times lower, "
            "with batch normalization and gradient clipping."
        )
    lr = best.lr
    # Explore upwards, but stay below the geometric middle to the nearest LR that diverged.
    diverged_above = [t.lr for t in diagnosed if t.label is Label.DIVERGED and t.lr > lr]
    ceiling = math.sqrt(lr * min(diverged_above)) if diverged_above else math.inf
    label = best.label
    if label is Label.UNDERTRAINED:
        train["epochs"] = min(SPEC_MAX_EPOCHS, 2 * epochs)
        _set_grid(spec, _log_grid(lr, min(10 * lr, ceiling), 3))
        return (
            f"The best trial (lr {lr:g}) was still improving: train {train['epochs']} epochs "
            f"and search learning rates from {lr:g} up to the highest that did not diverge."
        )
    if label is Label.OVERFITTING:
        weight_decay = float(train.get("weight_decay", DEFAULT_WEIGHT_DECAY))
        decays = sorted({min(1.0, v) for v in (weight_decay, *_stronger(weight_decay))})
        _section(spec, "search")["extra"] = {"weight_decay": decays}
        if float(model.get("dropout", 0.0)) == 0.0:
            model["dropout"] = 0.3
        if data.get("augment") == "none":
            data["augment"] = "auto"
        if best.diagnosis is not None and best.diagnosis.best_epoch:
            train["epochs"] = max(3, min(epochs, best.diagnosis.best_epoch + 2))
        _set_grid(spec, _log_grid(lr / 3, min(lr * 3, ceiling), 3))
        return (
            f"The best trial (lr {lr:g}) overfits: regularize — search weight decay "
            f"{decays} with dropout {model['dropout']} around lr {lr:g}, stop near the best "
            "epoch, and add data or augmentation if you can."
        )
    if label is Label.UNDERFITTING:
        width = int(model.get("width", 32))
        model["width"] = min(SPEC_MAX_WIDTH, 2 * width)
        model["dropout"] = 0.0
        train["weight_decay"] = float(train.get("weight_decay", DEFAULT_WEIGHT_DECAY)) / 10
        train["epochs"] = min(SPEC_MAX_EPOCHS, 2 * epochs)
        _set_grid(spec, _log_grid(lr / 3, min(lr * 3, ceiling), 3))
        return (
            f"The best trial (lr {lr:g}) underfits: double the model width to {model['width']}, "
            f"cut regularization and train {train['epochs']} epochs."
        )
    if label is Label.INCONCLUSIVE:
        train["epochs"] = max(3, epochs)
        _set_grid(spec, [_round_lr(lr)])
        return "The best trial ran fewer than 3 epochs: rerun it with at least 3."
    _set_grid(spec, _log_grid(lr / math.sqrt(10), min(lr * math.sqrt(10), ceiling), 5))
    return (
        f"The best trial (lr {lr:g}) is healthy: refine the search with 5 learning rates "
        f"around it (the seed's step 1 at a finer grain), then read the curves again."
    )


def _stronger(weight_decay: float) -> tuple[float, ...]:
    base = weight_decay if weight_decay > 0 else DEFAULT_WEIGHT_DECAY / 10
    return (base * 10, base * 100)


def diagnose_study(trials: Sequence[TrialOutcome], *, spec: dict[str, Any]) -> StudySummary:
    """Summarize a study from its trials' diagnoses; *spec* is the study's spec (a dict)."""
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
    stable = [t.lr for t in diagnosed if t.label is not Label.DIVERGED]
    fast_enough = [t.lr for t in diagnosed if t.label not in (Label.UNDERTRAINED, Label.DIVERGED)]
    window = LrWindow(
        high=max(stable) if stable else None,
        low=min(fast_enough) if fast_enough else None,
    )
    objective = str(spec.get("objective", "val_acc"))
    best = _best(diagnosed, objective)
    followup = copy.deepcopy(spec)
    next_step = _plan(followup, best, diagnosed)
    followup["name"] = _followup_name(spec)
    return StudySummary(
        trials=len(diagnosed),
        label_counts=dict(Counter(t.label for t in diagnosed if t.label is not None)),
        labels_by_lr=labels_by_lr,
        best_trial=None if best is None else best.number,
        best_lr=None if best is None else best.lr,
        best_value=None if best is None else _objective_value(best, objective),
        best_label=None if best is None else best.label,
        lr_window=window,
        next_step=next_step,
        followup_spec=followup,
    )
