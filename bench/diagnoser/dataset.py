"""The labeled set as samples: whole runs, their cuts and their sum-reduced views, each with its
true label.

What is true of a run is decided here, once, for every consumer (evaluate.py, the calibration
and the tests). How the runs are made: generate.py (waves/wave1.toml … wave21.toml); how they are
split: recipe.py (by wave: waves 1–20 are the training half, wave 21 the held-out half).

Ground truth:

- A whole run's label is the one its construction makes true. A healthy or underfitting
  construction must have reached its plateau (``training_settled``: the training loss fell
  at most an eighth of its whole fall over the last quarter, unless the LR was annealed
  away); one still descending steadily is remade longer (tests/diagnosis/test_labeled_set).
- A cut (the run as it looked after epoch t: what the worker, and a user diagnosing a run in
  progress, see) is labeled by what the REST OF THE SAME RUN, up to its end, shows. Both
  validation curves are first smoothed by a centred running median of 3 epochs (one lucky
  epoch is not a payoff); "before" is the best over epochs 1..t, "later" the best over
  epochs t+1..end.
  - Still paying → **undertrained**: validation accuracy later rose ≥ 3 points, or validation
    loss later fell ≥ 20 % (the loss ratio is scale-free: sum-reduced logs give the same
    answer). Whatever bought it counts: a cut of a schedule run is judged by what the
    schedule then did (a later step decay, or a cosine tail, that buys points still means
    more epochs paid).
  - Settled (under half of both: < 1.5 points and < 10 %) → what the construction makes it:
    healthy → **healthy**; underfitting → **underfitting**; overfitting → **overfitting** if
    the run had already passed its best (the minimum of its smoothed val loss, in hindsight,
    ≥ 2 epochs before t) with a visible rise since (≥ 10 % of the val loss's earlier drop),
    else ambiguous; undertrained (an LR far too low that stopped paying) → ambiguous.
  - A cut of a diverged run is **diverged** when, from the cut to the end, validation
    accuracy never gets clear of chance (stays under chance + 10 % of the way to 1): the run
    never learned, or had already collapsed. A cut taken while it was still learning, before
    its blow-up, cannot be known from its epochs: ambiguous.
  - Anything else is ambiguous: left out, and counted.
- Cuts are taken after every epoch t of CUT_POINTS (3 … 250, so 100–300-epoch runs are cut
  throughout) that leaves at least max(3, t/4) epochs after it: a shorter future shows too
  little to label the cut by.
- Every sample carries the PLAN its run had (``Curves.plan``: the recipe's epochs and LR
  schedule, from the run's stored config), as the worker passes it: a cut knows how many
  epochs and which LR steps were still to come. ``samples(..., plans=False)`` drops it (what
  a user diagnosing a CSV without a plan sees); evaluate.py reports both.
- A run with ``sum_reduced_scale`` is also shown as logged with reduction="sum": both losses
  multiplied by that batch size, whole and cut, labeled exactly like the mean-reduced run
  (``Sample.reduction``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages

from studies.diagnosis import Curves, Label, Plan  # noqa: E402
from trainer._config import OptimRecipe  # noqa: E402

RUNS_DIR = HERE / "runs"
CUT_POINTS = (3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 85, 100, 120, 150, 200,
              250)
TRUE_LABELS = [Label.HEALTHY, Label.OVERFITTING, Label.UNDERFITTING, Label.UNDERTRAINED,
               Label.DIVERGED]
PREDICTED_LABELS = [*TRUE_LABELS, Label.INCONCLUSIVE]

# The definition of a run still paying off, and the settled side (under half of it).
PAYING_ACC_GAIN = 0.03
PAYING_LOSS_FALL = 0.20
SETTLED_SHARE = 0.5
CHANCE_CLEARANCE = 0.1  # of the way from chance to 1: below it a run has not learned
# A settled training loss falls at most this share of its whole fall over the run's last
# quarter: a steady descent falls a quarter of it there, a curve at its plateau next to nothing
# (the construction check of a whole run labeled healthy or underfitting: ``training_settled``).
SETTLED_TRAIN_FALL_SHARE = 0.125
ANNEALED_LR_SHARE = 0.1  # a final LR under this share of the peak: the schedule settled the run


class Reduction(StrEnum):
    """How the sample's losses are logged: the run's own mean, or a sum over each batch."""

    MEAN = "mean"
    SUM = "sum"


@dataclass(frozen=True)
class Sample:
    """One thing to diagnose: a whole run or a cut of one, with its true label."""

    run_id: str
    split: str
    epochs: int  # epochs shown to the diagnoser
    whole: bool
    truth: Label
    curves: Curves
    family: str = ""  # the recipe without its seed (cross-validation folds by family)
    reduction: Reduction = Reduction.MEAN

    @property
    def name(self) -> str:
        name = self.run_id if self.whole else f"{self.run_id}@{self.epochs}"
        return name if self.reduction is Reduction.MEAN else f"{name}+{self.reduction}"


def load_runs(directory: Path = RUNS_DIR) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def family_of(run: dict[str, Any]) -> str:
    """A run's recipe: recorded since the second wave, the id less its seed for the first."""
    return str(run.get("family") or run["id"].rsplit("-s", 1)[0])


def waves_of(runs: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Each run's wave (the batch of recipes that made it: the unit the fits cross-fit by and
    leave-one-wave-out holds out), by run id."""
    return {run["id"]: int(run.get("wave") or 1) for run in runs}


def _centred_median(values: list[float], width: int) -> list[float]:
    half = width // 2
    return [median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def _filled(values: list[float | None] | None, missing: float) -> list[float]:
    # A null (non-finite) loss is worse than any loss; a null accuracy is no accuracy.
    return [missing if v is None else v for v in values or ()]


def _never_clear_of_chance(acc: list[float], num_classes: int) -> bool:
    chance = 1.0 / num_classes
    return max(acc, default=-math.inf) < chance + CHANCE_CLEARANCE * (1.0 - chance)


def _passed_its_best(loss: list[float], t: int) -> bool:
    smooth = _centred_median(loss, 5)
    best = min(range(len(smooth)), key=smooth.__getitem__)
    drop = max(smooth[: best + 1]) - smooth[best]
    return best <= t - 3 and smooth[t - 1] - smooth[best] >= 0.1 * drop


def cut_truth(run: dict[str, Any], t: int) -> Label | None:
    """The label the rest of *run* bears out for its first *t* epochs; None if ambiguous."""
    curves = run["curves"]
    label = Label(run["label"])
    acc = _filled(curves["val_acc"], -math.inf)
    loss = _filled(curves["val_loss"], math.inf)
    if label is Label.DIVERGED:
        return Label.DIVERGED if _never_clear_of_chance(acc[t:], curves["num_classes"]) else None
    acc_s, loss_s = _centred_median(acc, 3), _centred_median(loss, 3)
    gain = max(acc_s[t:]) - max(acc_s[:t])
    before, later = min(loss_s[:t]), min(loss_s[t:])
    fall = 1.0 - later / before if 0.0 < before < math.inf else 0.0
    if gain >= PAYING_ACC_GAIN or fall >= PAYING_LOSS_FALL:
        return Label.UNDERTRAINED
    if gain >= SETTLED_SHARE * PAYING_ACC_GAIN or fall >= SETTLED_SHARE * PAYING_LOSS_FALL:
        return None
    if label in (Label.HEALTHY, Label.UNDERFITTING):
        return label
    if label is Label.OVERFITTING and _passed_its_best(loss, t):
        return Label.OVERFITTING
    return None


def training_settled(run: dict[str, Any]) -> bool | None:
    """Whether a whole run's training loss had reached its plateau by the end (None: not
    judged here — a loss with gaps, fewer than 8 epochs, or an LR annealed away, which settles
    any curve by the schedule, whatever the model).

    What a healthy ("trained to convergence") or underfitting ("cannot fit its own training
    set") construction must show; a loss still descending at a steady pace is a run that more
    epochs would carry further (issue 11: a smooth slow descent is undertrained). Read on the
    curves alone, never with the diagnoser.
    """
    curves = run["curves"]
    loss, lr = curves["train_loss"], curves.get("lr") or []
    if len(loss) < 8 or any(v is None for v in loss):
        return None
    if lr and lr[-1] < ANNEALED_LR_SHARE * max(lr):
        return None
    smooth = _centred_median(loss, 3)
    whole_fall = smooth[0] - min(smooth)
    last_quarter_fall = smooth[len(smooth) * 3 // 4 - 1] - smooth[-1]
    return whole_fall <= 0.0 or last_quarter_fall <= SETTLED_TRAIN_FALL_SHARE * whole_fall


def cut_points(epochs: int) -> list[int]:
    """The epochs after which a run of *epochs* epochs is cut."""
    return [t for t in CUT_POINTS if epochs - t >= max(3, math.ceil(t / 4))]


def plan_of(run: dict[str, Any]) -> Plan | None:
    """The plan the run was trained to: its recipe's epochs and LR schedule (None for a
    hand-made run without a stored config)."""
    if "config" not in run:
        return None
    optim = run["config"]["optim"]
    recipe = {k: v for k, v in optim.items() if k in OptimRecipe.model_fields}
    return Plan.of_recipe(OptimRecipe.model_validate(recipe))


def _views(
    run: dict[str, Any], *, sum_views: bool, plans: bool
) -> list[tuple[Reduction, Curves]]:
    plan = {"plan": plan_of(run)} if plans else {}  # a None plan is no plan
    views = [(Reduction.MEAN, Curves.model_validate(run["curves"] | plan))]
    scale = run.get("sum_reduced_scale")
    if sum_views and scale:
        scaled = {
            key: [None if v is None else v * scale for v in run["curves"][key]]
            for key in ("train_loss", "val_loss")
        }
        views.append((Reduction.SUM, Curves.model_validate({**run["curves"], **scaled, **plan})))
    return views


def samples(
    runs: Iterable[dict[str, Any]], *, cuts: bool, sum_views: bool = True, plans: bool = True
) -> tuple[list[Sample], int]:
    """Whole runs (and, with *cuts*, their labeled cuts), each also in its sum-reduced view
    when the run has one and *sum_views* is on, each with its run's plan when *plans* is on;
    plus the number of ambiguous cuts left out."""
    out: list[Sample] = []
    ambiguous = 0
    for run in runs:
        family = family_of(run)
        truths: dict[int, Label | None] = {}  # one truth per cut, whatever the view
        for reduction, curves in _views(run, sum_views=sum_views, plans=plans):
            out.append(Sample(run["id"], run["split"], curves.epochs, True, Label(run["label"]),
                              curves, family, reduction))
            if not cuts:
                continue
            for t in cut_points(curves.epochs):
                if t not in truths:
                    truths[t] = cut_truth(run, t)
                truth = truths[t]
                if truth is None:
                    ambiguous += 1
                    continue
                out.append(Sample(run["id"], run["split"], t, False, truth, curves.prefix(t),
                                  family, reduction))
    return out, ambiguous
