"""The labeled set as samples: whole runs and their cuts, each with its true label.

What is true of a run is decided here, once, for every consumer (evaluate.py, the calibration
and the tests). How the runs are made: generate.py.

Ground truth:
- A whole run's label is the one its construction makes true (generate.py).
- A cut (the run as it looked after epoch t, for long constant-LR runs) gets the label the
  rest of the same run bears out, looking ahead up to epoch 2t (as far again as it has run):
  - undertrained if validation accuracy later clearly beats its best so far: by at least
    max(0.01, 10% of the remaining error 1 - best);
  - if instead it gains less than half that margin, the run had settled: an overfitting run
    that had already passed its best (the minimum of its smoothed val loss, in hindsight, at
    least 2 epochs before t) with a visible rise (≥ 10% of the val loss's earlier drop) was
    overfitting; a healthy-by-construction run was healthy;
  - anything in between is ambiguous and left out (counted in the report).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages

from studies.diagnosis import Curves, Label  # noqa: E402

RUNS_DIR = HERE / "runs"
CUT_POINTS = (3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70)
TRUE_LABELS = [Label.HEALTHY, Label.OVERFITTING, Label.UNDERFITTING, Label.UNDERTRAINED,
               Label.DIVERGED]
PREDICTED_LABELS = [*TRUE_LABELS, Label.INCONCLUSIVE]


@dataclass(frozen=True)
class Sample:
    """One thing to diagnose: a whole run or a cut of one, with its true label."""

    run_id: str
    split: str
    epochs: int  # epochs shown to the diagnoser
    whole: bool
    truth: Label
    curves: Curves

    @property
    def name(self) -> str:
        return self.run_id if self.whole else f"{self.run_id}@{self.epochs}"


def load_runs(directory: Path = RUNS_DIR) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def _centred_median(values: list[float], width: int = 5) -> list[float]:
    half = width // 2
    return [median(values[max(0, i - half) : i + half + 1]) for i in range(len(values))]


def cut_truth(run: dict[str, Any], t: int) -> Label | None:
    """The label the rest of *run* bears out for its first *t* epochs; None if ambiguous."""
    curves = run["curves"]
    acc = curves["val_acc"]
    n = len(acc)
    best_so_far = max(acc[:t])
    ahead = acc[t : min(n, 2 * t)]
    if not ahead:
        return None
    gain = max(ahead) - best_so_far
    margin = max(0.01, 0.1 * (1.0 - best_so_far))
    if gain >= margin:
        return Label.UNDERTRAINED
    if gain >= margin / 2:
        return None
    if run["label"] == Label.HEALTHY:
        return Label.HEALTHY
    if run["label"] == Label.OVERFITTING:
        loss = _centred_median(curves["val_loss"])
        best = min(range(n), key=loss.__getitem__)
        drop = max(loss[: best + 1]) - loss[best]
        if best <= t - 3 and loss[t - 1] - loss[best] >= 0.1 * drop:
            return Label.OVERFITTING
    return None


def samples(runs: Iterable[dict[str, Any]], *, cuts: bool) -> tuple[list[Sample], int]:
    """Whole runs (and, with *cuts*, their labeled cuts), plus the number of ambiguous cuts."""
    out: list[Sample] = []
    ambiguous = 0
    for run in runs:
        curves = Curves.model_validate(run["curves"])
        out.append(Sample(run["id"], run["split"], curves.epochs, True, Label(run["label"]),
                          curves))
        if not (cuts and run["cuttable"]):
            continue
        for t in CUT_POINTS:
            if t >= curves.epochs:
                break
            truth = cut_truth(run, t)
            if truth is None:
                ambiguous += 1
                continue
            out.append(Sample(run["id"], run["split"], t, False, truth, curves.prefix(t)))
    return out, ambiguous
