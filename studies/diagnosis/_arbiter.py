"""The arbiter: for a run in progress or open-ended, the label a model of the labeled set gives.

The rules (_rules.py) read each piece of evidence against a hand-set margin, one at a time,
first rule wins. On a run in progress (its plan, given or implied by its LR decay, still
has epochs left) the pieces pull against each other — a flat curve early in a long plan, a
forecast gain just short of "more likely than not", a weak training fit that is still
creeping up — and no ordering of margins weighs them well: on recipes the rules were not
developed on, most of their misses were such cuts (docs/diagnoser.md, "where it fails").
The arbiter weighs the same measured pieces, and the rules' own verdict, together: a
multinomial logistic regression fitted on the TRAINING half of the labeled set
(bench/diagnoser/fit_arbiter.py, class-balanced so that each label counts alike, as the
balanced accuracy does), whose coefficients live in arbiter.json. At run time it is a
clip, a standardisation and one matrix product: no scikit-learn.

Two models, one per kind of run (``ArbiterKind``), each fitted on its own rows: a run IN
PROGRESS (epochs left in its plan, given or implied by its LR decay), and an OPEN-ENDED run —
no epochs ahead that a plan knows of: no plan given (a user's CSV, where a whole run and a cut
look alike), or a plan finished, where the question is the same, would more epochs pay. The
open-ended model (twelfth session) never turns the rules' undertrained into underfitting: that
verdict says the curves have not settled, and a model that cannot fit its training set must
have stopped learning (issue 11 items 3 and 5) — a conjunction a linear weighing of the fit
level cannot enforce; without the guard, leave-one-wave-out, LR-far-too-low whole runs were
called underfitting.

Where neither applies the rules' verdict stands: a run missing any of the four curves (the
models were fitted on runs that log all four), a run whose accuracies never left chance (its
loss's stability decides: _never_learned.py), and an underfitting verdict drawn from the
study's best (the arbiter knows nothing of the study).
"""

import json
import math
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Final

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from studies.diagnosis._measure import Measures
from studies.diagnosis._never_learned import never_left_chance
from studies.diagnosis._result import Label
from studies.diagnosis._rules import MEMORISED_ACC, gain_probabilities, train_level
from studies.diagnosis._stats import trend_p_value
from studies.diagnosis._verdict import Verdict

ARBITER_FILE: Final = Path(__file__).with_name("arbiter.json")
# The labels the arbiter chooses among, in the order of its coefficient rows. Not diverged:
# that verdict needs its own evidence (a blow-up, a collapse, a loss that never settles at
# chance: _diverge.py, _never_learned.py), and a run those rules call diverged keeps it.
LABELS: Final = (
    Label.HEALTHY,
    Label.OVERFITTING,
    Label.UNDERFITTING,
    Label.UNDERTRAINED,
)
# The measured pieces, each scale-free, in the order of its coefficient columns (the
# rules' verdict follows as one indicator per label).
FEATURES: Final = (
    "p_acc_gain",  # the forecast's probability of a material validation-accuracy gain
    "p_loss_fall",  # ... and of a material validation-loss fall
    "lr_fall_log10",  # how many times (log10, at most 3) the plan still lowers the LR
    "plan_left",  # the share of the planned epochs still to come
    "val_error",  # 1 - the smoothed validation accuracy now
    "train_fit",  # how far the model fits its own training set (0 chance, 1 perfect)
    "plateau_share",  # the share of the judged segment the validation metric has been flat
    "val_loss_pace",  # the loss forecast's gain ahead over its gain so far
    "val_acc_pace",  # ... and the accuracy's
    "val_loss_trend_p",  # one-sided Mann-Kendall p-value of a falling loss, end window
    "acc_gap",  # smoothed train accuracy - validation accuracy now
    "log_epochs",  # log of the epochs recorded
    "annealed",  # 1 when the LR has already been annealed to a tenth of its peak
    # Twelfth session: whether the run still sets new bests, and how its losses move now.
    "since_best_val_loss",  # share of the segment since the smoothed val loss's minimum
    "recent_train_loss_fall",  # log of the smoothed train loss a window ago over now
    "val_loss_fall",  # log of the segment's first smoothed val loss over its minimum
    "val_loss_tau",  # Kendall's tau of the val loss over the end window
    "train_loss_tau",  # ... and of the train loss
)
# A planned LR fall counts up to this many times: beyond it the LR is as good as annealed to
# zero (a fall to exactly 0 is infinite).
MAX_LR_FALL: Final = 1e3


class ArbiterKind(StrEnum):
    """Which runs a model was fitted on, and is applied to."""

    IN_PROGRESS = "in_progress"  # epochs left in a plan, given or implied by the LR
    OPEN_ENDED = "open_ended"  # no epochs ahead that a plan knows of: none given, or finished


def feature_names() -> list[str]:
    """Every input's name, in order: the measured pieces, then the rules' verdict."""
    return [*FEATURES, *(f"rule_{label.value}" for label in LABELS)]


class ArbiterModel(BaseModel):
    """The fitted model: per feature its clip range and standardisation, per label its
    coefficients and intercept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ArbiterKind
    fitted_on: str
    features: list[str]
    labels: list[Label]
    clip_low: list[float]
    clip_high: list[float]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]
    intercept: list[float]
    cross_validation: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _shapes_agree(self) -> "ArbiterModel":
        if self.features != feature_names() or self.labels != list(LABELS):
            raise ValueError(
                "fitted on other features or labels than this diagnoser computes: re-run "
                "bench/diagnoser/fit_arbiter.py"
            )
        width = len(self.features)
        columns = (self.clip_low, self.clip_high, self.mean, self.scale, *self.coef)
        if any(len(column) != width for column in columns):
            raise ValueError("every per-feature list must have one value per feature")
        if len(self.coef) != len(self.labels) or len(self.intercept) != len(self.labels):
            raise ValueError("coef and intercept must have one row per label")
        return self

    def probabilities(self, x: list[float]) -> dict[Label, float]:
        """The model's probability of each label for the feature vector *x*."""
        values = np.clip(np.asarray(x, dtype=float), self.clip_low, self.clip_high)
        z = (values - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = np.asarray(self.coef) @ z + np.asarray(self.intercept)
        odds = np.exp(logits - logits.max())
        shares = odds / odds.sum()
        return {label: float(p) for label, p in zip(self.labels, shares, strict=True)}

    def choose(self, x: list[float]) -> tuple[Label, dict[Label, float]]:
        """The most probable label for *x* that its measured pieces allow, and every share.

        A linear model weighs the pieces against each other, so it can name a label a piece
        rules out by definition: underfitting (issue 11 item 5: the model cannot fit its own
        training set) for a training set fitted to within MEMORISED_ACC of perfect, as a
        ResNet cut at 1.000 training accuracy was called once. Open-ended, nor for a run the
        rules call undertrained (the module's docstring says why).
        """
        shares = self.probabilities(x)
        allowed = dict(shares)
        rules_undertrained = x[len(FEATURES) + LABELS.index(Label.UNDERTRAINED)] == 1.0
        if x[FEATURES.index("train_fit")] >= MEMORISED_ACC or (
            self.kind is ArbiterKind.OPEN_ENDED and rules_undertrained
        ):
            del allowed[Label.UNDERFITTING]
        return max(allowed, key=allowed.__getitem__), shares


class Arbiters(BaseModel):
    """The fitted models, one per kind of run (arbiter.json)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: list[ArbiterModel]

    @model_validator(mode="after")
    def _one_per_kind(self) -> "Arbiters":
        kinds = [model.kind for model in self.models]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"one model per kind, got {[k.value for k in kinds]}")
        return self

    def of(self, kind: ArbiterKind) -> ArbiterModel | None:
        """The model fitted for *kind* of run (None: no such model was fitted)."""
        return next((model for model in self.models if model.kind is kind), None)


@cache
def _models() -> Arbiters | None:
    if not ARBITER_FILE.exists():
        return None
    return Arbiters.model_validate(json.loads(ARBITER_FILE.read_text(encoding="utf-8")))


def kind_of(m: Measures) -> ArbiterKind:
    """The kind of run *m* is, for the arbiter."""
    return ArbiterKind.IN_PROGRESS if m.ahead is not None else ArbiterKind.OPEN_ENDED


def applies(m: Measures) -> bool:
    """A run in progress or open-ended that logs all four curves, each long enough to
    forecast, and has left chance (one that has not is judged by its loss's stability, which
    the arbiter does not weigh: _never_learned.py)."""
    return (
        not never_left_chance(m)
        and m.train_acc is not None
        and m.val_acc is not None
        and m.train_loss is not None
        and m.val_loss is not None
        and m.forecasts.val_acc is not None
        and m.forecasts.val_loss is not None
    )


def features(m: Measures, rule: Label) -> list[float] | None:
    """The arbiter's inputs for a run the rules labeled *rule*; None where it does not apply."""
    if not applies(m):
        return None
    assert m.train_acc is not None and m.val_acc is not None and m.train_loss is not None
    assert m.val_loss is not None and m.forecasts.val_acc is not None
    assert m.forecasts.val_loss is not None and m.gap is not None  # both accuracies: acc gap
    p_acc, p_loss = gain_probabilities(m)
    fit = train_level(m)
    # An open-ended run has no plan ahead: no LR fall and no epochs left that it knows of.
    lr_fall = (m.ahead.lr_fall or 1.0) if m.ahead is not None else 1.0
    plan_left = m.ahead.epochs_left / m.ahead.planned_epochs if m.ahead is not None else 0.0
    val_loss, train_loss = m.val_loss.smooth, m.train_loss.smooth
    best_loss_at = min(range(len(val_loss)), key=val_loss.__getitem__)
    measured = [
        p_acc if p_acc is not None else 0.0,
        p_loss if p_loss is not None else 0.0,
        math.log10(min(lr_fall, MAX_LR_FALL)),
        plan_left,
        1.0 - m.val_acc.smooth[-1],
        fit[0] if fit is not None else 0.0,
        (m.plateau_epochs or 0) / m.epochs,
        m.forecasts.val_loss.pace,
        m.forecasts.val_acc.pace,
        trend_p_value(m.val_loss.raw[-m.window :], rising=False),
        m.gap[-1],
        math.log(m.levels.epochs),
        1.0 if m.schedule.annealed else 0.0,
        (len(val_loss) - 1 - best_loss_at) / len(val_loss),
        _log_ratio(train_loss[-m.window], train_loss[-1]),
        _log_ratio(val_loss[0], val_loss[best_loss_at]),
        m.val_loss.tau,
        m.train_loss.tau,
    ]
    return measured + [1.0 if rule is label else 0.0 for label in LABELS]


def _log_ratio(before: float, after: float) -> float:
    """How far a loss fell from *before* to *after*, scale-free (log of their ratio); 0 for a
    loss that is not positive, whose ratio means nothing."""
    return math.log(before / after) if before > 0.0 and after > 0.0 else 0.0


def arbitrate(
    m: Measures, verdict: Verdict, *, study_context: bool, models: Arbiters | None = None
) -> Verdict:
    """The arbiter's verdict where it applies, else *verdict*. The score is the model's
    probability of its label (calibration.json then maps it, per stage, as it does the
    rules' raw scores); the reason is the rules' where they agree, else the pieces that
    weigh most for the arbiter's label."""
    models = models or _models()
    model = None if models is None else models.of(kind_of(m))
    if model is None or verdict.label not in LABELS:
        return verdict
    if study_context and verdict.label is Label.UNDERFITTING:
        return verdict  # below the study's best: a fact the arbiter was never shown
    x = features(m, verdict.label)
    if x is None or not all(math.isfinite(v) for v in x):
        return verdict  # a piece the model cannot weigh (absurd curves): the rules stand
    label, shares = model.choose(x)
    if label is verdict.label:
        return Verdict(label, shares[label], verdict.reason)
    return Verdict(label, shares[label], _reason(m, label, shares, verdict))


def _reason(m: Measures, label: Label, shares: dict[Label, float], rule: Verdict) -> str:
    """Why the arbiter's label, from the measured pieces, with what the rules read alone."""
    ahead, val_acc, train_acc = m.ahead, m.val_acc, m.train_acc
    acc, loss = m.forecasts.val_acc, m.forecasts.val_loss
    assert val_acc is not None and train_acc is not None
    assert acc is not None and loss is not None  # applies() checked them all
    if ahead is not None:
        where = f"{ahead.epochs_left} of {ahead.planned_epochs} planned epochs still to come"
        point = "at this point of their plan"
    else:
        planned = "its plan finished" if m.levels.curves.plan is not None else "no plan given"
        where = f"{m.levels.epochs} epochs recorded, {planned}"
        point = "at this point"
    now = val_acc.smooth[-1]
    if label is Label.UNDERTRAINED:
        why = (
            f"{where}; forecast by epoch {acc.horizon}: validation accuracy {acc.now:.3f} → "
            f"{acc.at_horizon:.3f}, validation loss {loss.now:.3g} → {loss.at_horizon:.3g}; "
            f"runs like this one {point} went on to gain"
        )
    elif label is Label.HEALTHY:
        why = (
            f"{where}, but validation accuracy has settled at {now:.3f} (flat for "
            f"{m.plateau_epochs} epochs) and runs like this one gained little more"
        )
    elif label is Label.UNDERFITTING:
        fit = train_level(m)
        described = fit[1] if fit is not None else f"training accuracy {train_acc.smooth[-1]:.3f}"
        why = f"{described} with a small gap: the model fits its own training set poorly"
    else:
        why = (
            f"training accuracy {train_acc.smooth[-1]:.3f} against validation {now:.3f}: the "
            "gap, not more epochs, limits this run"
        )
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    weighed = ", ".join(f"{lbl.value} {p:.2f}" for lbl, p in ranked if p >= 0.05)
    return f"{why} (weighed together: {weighed}; the rules alone read {rule.label.value})"
