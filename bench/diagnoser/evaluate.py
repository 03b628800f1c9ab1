"""Evaluate the diagnoser on the labeled set in runs/ (whole runs, and cuts of long runs).

Ground truth (what each whole run and cut really is): dataset.py. Besides the confusion
matrix, the calibration of `confidence`: the reliability table (share of verdicts right per
confidence bin) and the expected calibration error (ECE: the bins' |share right − mean
confidence|, weighted by how many verdicts fall in each).

    .venv/bin/python bench/diagnoser/evaluate.py [--split train|heldout|all] [--markdown]
        [--errors]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and dataset.py beside this file

from dataset import (  # noqa: E402
    PREDICTED_LABELS,
    TRUE_LABELS,
    Sample,
    load_runs,
    samples,
)

from studies.diagnosis import Label, diagnose_run  # noqa: E402


@dataclass(frozen=True)
class Report:
    """Confusion matrix and the derived rates for one set of samples."""

    confusion: dict[Label, Counter[Label]]
    errors: list[tuple[Sample, Label, str]]
    confidences: list[tuple[float, bool]]  # each verdict's confidence, and whether it was right

    def reliability(self) -> list[tuple[float, float, int, float, float]]:
        """Per confidence bin (low, high): verdicts in it, their mean confidence, share right."""
        rows = []
        for low, high in BINS:
            inside = [(c, r) for c, r in self.confidences if low <= c < high or c == high == 1.0]
            if inside:
                mean = sum(c for c, _ in inside) / len(inside)
                right = sum(r for _, r in inside) / len(inside)
                rows.append((low, high, len(inside), mean, right))
        return rows

    @property
    def ece(self) -> float:
        total = len(self.confidences)
        return sum(n / total * abs(right - mean) for _, _, n, mean, right in self.reliability())

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


BINS = [(0.0, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0)]


def evaluate(selected: list[Sample]) -> Report:
    confusion: dict[Label, Counter[Label]] = {}
    errors = []
    confidences = []
    for sample in selected:
        diagnosis = diagnose_run(sample.curves)
        confusion.setdefault(sample.truth, Counter())[diagnosis.label] += 1
        confidences.append((diagnosis.confidence, diagnosis.label == sample.truth))
        if diagnosis.label != sample.truth:
            errors.append((sample, diagnosis.label, diagnosis.summary))
    return Report(confusion, errors, confidences)


def reliability_markdown(title: str, report: Report) -> str:
    lines = [f"#### {title}: reliability of `confidence`", "",
             f"Expected calibration error **{report.ece:.3f}**.", "",
             "| confidence | verdicts | mean confidence | share right |", "|---|---|---|---|"]
    for low, high, n, mean, right in report.reliability():
        lines.append(f"| {low:.1f}–{high:.1f} | {n} | {mean:.3f} | {right:.3f} |")
    return "\n".join(lines) + "\n"


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
            if amb is not None:
                print(reliability_markdown(f"{args.split}: {title}", report))
        else:
            print(f"{args.split:8s} {title:18s} n={report.total:4d} acc={_pct(report.accuracy)} "
                  f"balanced={_pct(report.balanced_accuracy)} "
                  f"healthy-false-alarms={_pct(report.healthy_false_alarms)}"
                  + f" ece={report.ece:.3f}"
                  + (f" ambiguous-cuts={amb}" if amb is not None else ""))
        if args.errors:
            for sample, predicted, summary in report.errors:
                print(f"   {sample.name:45s} {sample.truth:12s} -> {predicted:12s} {summary}")


if __name__ == "__main__":
    main()
