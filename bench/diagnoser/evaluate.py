"""Evaluate the diagnoser on the labeled set in runs/ (whole runs, and cuts of long runs).

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

    .venv/bin/python bench/diagnoser/evaluate.py [--split train|heldout|all] [--markdown]
        [--errors]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages

from studies.diagnosis import Curves, Label, diagnose_run  # noqa: E402

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


@dataclass(frozen=True)
class Report:
    """Confusion matrix and the derived rates for one set of samples."""

    confusion: dict[Label, Counter[Label]]
    errors: list[tuple[Sample, Label, str]]

    @property
    def total(self) -> int:
        return sum(sum(row.values()) for row in self.confusion.values())

    @property
    def accuracy(self) -> float:
        right = sum(self.confusion[t][t] for t in self.confusion)
        return right / self.total if self.total else 0.0

    def recall(self, label: Label) -> float | None:
        row = self.confusion.get(label)
        return row[label] / sum(row.values()) if row else None

    def precision(self, label: Label) -> float | None:
        predicted = sum(row[label] for row in self.confusion.values())
        return self.confusion[label][label] / predicted if predicted and label in self.confusion \
            else (0.0 if predicted else None)

    @property
    def balanced_accuracy(self) -> float:
        recalls = [r for t in TRUE_LABELS if (r := self.recall(t)) is not None]
        return sum(recalls) / len(recalls) if recalls else 0.0

    @property
    def healthy_false_alarms(self) -> float | None:
        recall = self.recall(Label.HEALTHY)
        return None if recall is None else 1.0 - recall


def evaluate(selected: list[Sample]) -> Report:
    confusion: dict[Label, Counter[Label]] = {}
    errors = []
    for sample in selected:
        diagnosis = diagnose_run(sample.curves)
        confusion.setdefault(sample.truth, Counter())[diagnosis.label] += 1
        if diagnosis.label != sample.truth:
            errors.append((sample, diagnosis.label, diagnosis.summary))
    return Report(confusion, errors)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}%"


def markdown(title: str, report: Report, ambiguous: int | None = None) -> str:
    lines = [f"#### {title}", ""]
    extra = f", {ambiguous} ambiguous cuts left out" if ambiguous else ""
    lines.append(
        f"{report.total} samples{extra}: accuracy **{_pct(report.accuracy)}**, balanced accuracy "
        f"**{_pct(report.balanced_accuracy)}**, healthy false alarms "
        f"**{_pct(report.healthy_false_alarms)}**."
    )
    lines += ["", "| true ↓ / predicted → | " + " | ".join(PREDICTED_LABELS) + " | recall |",
              "|---" * (len(PREDICTED_LABELS) + 2) + "|"]
    for truth in TRUE_LABELS:
        row = report.confusion.get(truth)
        if not row:
            continue
        cells = " | ".join(str(row[p]) for p in PREDICTED_LABELS)
        lines.append(f"| **{truth}** | {cells} | {_pct(report.recall(truth))} |")
    precisions = " | ".join(_pct(report.precision(p)) for p in PREDICTED_LABELS)
    lines.append(f"| precision | {precisions} | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "heldout", "all"), default="train")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--errors", action="store_true")
    args = parser.parse_args()
    runs = [r for r in load_runs() if args.split in ("all", r["split"])]
    whole, _ = samples(runs, cuts=False)
    everything, ambiguous = samples(runs, cuts=True)
    for title, selected, amb in (("whole runs", whole, None),
                                 ("whole runs + cuts", everything, ambiguous)):
        report = evaluate(selected)
        if args.markdown:
            print(markdown(f"{args.split}: {title}", report, amb))
        else:
            print(f"{args.split:8s} {title:18s} n={report.total:4d} acc={_pct(report.accuracy)} "
                  f"balanced={_pct(report.balanced_accuracy)} "
                  f"healthy-false-alarms={_pct(report.healthy_false_alarms)}"
                  + (f" ambiguous-cuts={amb}" if amb is not None else ""))
        if args.errors:
            for sample, predicted, summary in report.errors:
                print(f"   {sample.name:45s} {sample.truth:12s} -> {predicted:12s} {summary}")


if __name__ == "__main__":
    main()
