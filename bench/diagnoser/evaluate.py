"""Evaluate the diagnoser on the labeled set in runs/ (whole runs, and cuts of long runs).

Ground truth (what each whole run and cut really is): dataset.py. Besides the confusion
matrix, the calibration of `confidence`: the reliability table (share of verdicts right per
confidence bin) and the expected calibration error (ECE: the bins' |share right − mean
confidence|, weighted by how many verdicts fall in each).

    .venv/bin/python bench/diagnoser/evaluate.py [--split train|heldout|all] [--markdown]
        [--errors] [--plans with|without|both] [--pieces] [--cv-families K] [--cv-waves]

``--cv-families K`` is how methods are chosen (crossval.py): leave-family-out cross-validation
within the training half, the arbiter and calibration refitted without each fold; pooled
numbers. ``--cv-waves`` does the same leaving out one wave at a time (a batch of recipes made
together): the nearest the training half comes to a wave it has never seen, and the harder
measure of the two.

Every sample is evaluated with its run's plan (what the worker passes: dataset.py) and
without one (what a user diagnosing a CSV has).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and dataset.py beside this file

from calibrate import judge_training_half  # noqa: E402
from crossval import (  # noqa: E402
    Scored,
    cross_validate,
    family_false_alarms,
    fold_false_alarms,
    leave_one_wave_out,
)
from dataset import (  # noqa: E402
    PREDICTED_LABELS,
    TRUE_LABELS,
    Sample,
    load_runs,
    samples,
    waves_of,
)
from recipe import WHOLE_WAVES_HELDOUT_FROM  # noqa: E402

from studies.diagnosis import Label, diagnose_run  # noqa: E402
from studies.diagnosis._calibration import calibrated  # noqa: E402
from studies.diagnosis._diverge import find_divergence  # noqa: E402
from studies.diagnosis._forecast import CurveForecast, GainBy  # noqa: E402
from studies.diagnosis._measure import Measures, measure, measure_levels  # noqa: E402
from studies.diagnosis._rules import material_acc_gain, material_loss_fall  # noqa: E402
from studies.diagnosis._run import judge  # noqa: E402


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


def evaluate(selected: list[Sample], *, rules_only: bool = False) -> Report:
    """The shipped diagnoser's verdicts on *selected*; *rules_only*: the rules' alone, the
    arbiter left out (its confidence is then the rules' raw score through a calibration
    fitted to the arbiter's: read only its labels)."""
    confusion: dict[Label, Counter[Label]] = {}
    errors = []
    confidences = []
    for sample in selected:
        if rules_only:
            j = judge(sample.curves, rules_only=True)
            label, summary = j.verdict.label, j.verdict.reason
            confidence = calibrated(label, j.verdict.confidence, j.stage)
        else:
            diagnosis = diagnose_run(sample.curves)
            label, summary, confidence = diagnosis.label, diagnosis.summary, diagnosis.confidence
        confusion.setdefault(sample.truth, Counter())[label] += 1
        confidences.append((confidence, label == sample.truth))
        if label != sample.truth:
            errors.append((sample, label, summary))
    return Report(confusion, errors, confidences)


def report_of(scored: list[Scored]) -> Report:
    """The Report of cross-validated verdicts (each confidence from its fold's calibration)."""
    confusion: dict[Label, Counter[Label]] = {}
    errors = []
    confidences = []
    for s in scored:
        confusion.setdefault(s.sample.truth, Counter())[s.outcome.label] += 1
        confidences.append((s.confidence, s.outcome.right))
        if not s.outcome.right:
            errors.append((s.sample, s.outcome.label, ""))
    return Report(confusion, errors, confidences)


def _print_cross_validated(name: str, scored: list[Scored], *, errors: bool) -> None:
    """The pooled numbers of cross-validated verdicts, with and without plans."""
    for plans in (True, False):
        kind = "with plans" if plans else "without plans"
        mine = [s for s in scored if s.plans == plans]
        for title, selected in ((f"whole runs, {kind}", [s for s in mine if s.sample.whole]),
                                (f"whole runs + cuts, {kind}", mine)):
            report = report_of(selected)
            print(f"{name:8s} {title:34s} n={report.total:4d} acc={_pct(report.accuracy)} "
                  f"balanced={_pct(report.balanced_accuracy)} "
                  f"healthy-false-alarms={_pct(report.healthy_false_alarms)} "
                  f"ece={report.ece:.3f}")
            print("   recall: " + ", ".join(f"{t} {_pct(report.recall(t))}" for t in TRUE_LABELS))
        folds = fold_false_alarms(mine)
        print("   healthy false alarms per fold: "
              + ", ".join(f"{a}/{n}" for a, n in folds.values()))
        if errors:
            for family, alarms, healthy in family_false_alarms(mine):
                print(f"   {family:45s} {alarms}/{healthy} healthy samples alarmed")
            for sample, predicted, _ in report_of(mine).errors:
                print(f"   {sample.name:45s} {sample.truth:12s} -> {predicted}")


def cross_validation(runs: list[dict[str, Any]], k: int, *, errors: bool) -> None:
    """Print the pooled leave-family-out numbers of the training half, with and without plans."""
    _print_cross_validated(f"cv{k}", cross_validate(judge_training_half(runs), k), errors=errors)


def wave_cross_validation(runs: list[dict[str, Any]], *, errors: bool) -> None:
    """Print the leave-one-wave-out numbers of the training half: each wave from the one
    held out whole on (recipe.WHOLE_WAVES_HELDOUT_FROM), then those waves pooled. Earlier
    waves are fitted on, never scored: their runs were split by hash and family, not made
    as one held-out batch."""
    wave_of = waves_of(runs)
    scored = leave_one_wave_out(judge_training_half(runs), wave_of)
    scored = [s for s in scored if s.fold >= WHOLE_WAVES_HELDOUT_FROM]
    for wave in sorted({s.fold for s in scored}):
        _print_cross_validated(f"wave {wave}", [s for s in scored if s.fold == wave],
                               errors=errors)
    _print_cross_validated("pooled", scored, errors=False)


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


def _slope_rule(m: Measures) -> bool:
    """The first diagnoser's undertrained rule (before issue 11), for comparison: the val
    metric's Theil–Sen gain over the end window, with Kendall's tau for consistency."""
    if m.val_acc is not None:
        gain = m.val_acc.slope * m.window
        if m.val_acc.tau >= 0.3 and gain >= max(0.03, 2 * m.val_acc.noise):
            return True
    if m.val_loss is not None:
        span = max(m.val_loss.smooth) - min(m.val_loss.smooth)
        gain = -m.val_loss.slope * m.window / span if span > 0 else 0.0
        if m.val_loss.tau <= -0.3 and gain >= max(0.15, 2 * m.val_loss.noise / span if span else 0):
            return True
        level = m.val_loss.smooth[-1]
        fall = -m.val_loss.slope * m.window / level if level > 0 else 0.0
        if m.window >= 4 and m.val_loss.tau <= -0.8 and fall >= 0.2:
            return True
    return False


def _pieces(m: Measures) -> dict[str, bool]:
    """Each way of telling "still paying" from the rest, on one sample's measurements (the
    forecast read at the sample's default horizon: its planned end with epochs left, else
    twice its epochs)."""
    acc, loss = m.forecasts.val_acc, m.forecasts.val_loss

    def p(forecast: CurveForecast | None, margin: float, by: GainBy) -> float:
        return forecast.probability_of_gain(margin, by=by) if forecast is not None else 0.0

    acc_margin = material_acc_gain(acc) if acc is not None else 0.0
    loss_margin = material_loss_fall(loss) if loss is not None else 0.0
    p_acc_h = p(acc, acc_margin, GainBy.HORIZON)
    p_acc = p(acc, acc_margin, GainBy.EVENTUALLY)
    p_loss = p(loss, loss_margin, GainBy.EVENTUALLY)
    shown = max(p(acc, acc_margin, GainBy.SHOWN), p(loss, loss_margin, GainBy.SHOWN))
    return {
        "slope rule (before issue 11)": _slope_rule(m),
        "val acc forecast, gain by the horizon": p_acc_h >= 0.5,
        "val acc forecast, eventual gain": p_acc >= 0.5,
        "val loss forecast, eventual fall": p_loss >= 0.5,
        "acc or mean(acc, loss), eventual (third session)": max(p_acc, (p_acc + p_loss) / 2)
        >= 0.5,
        "acc or loss, eventual": max(p_acc, p_loss) >= 0.5,
        "acc or loss, shown by the horizon (noise included)": shown >= 0.5,
        "that, or the slope rule": shown >= 0.5 or _slope_rule(m),
        "that, and the slope rule": shown >= 0.5 and _slope_rule(m),
    }


def pieces_markdown(title: str, selected: list[Sample]) -> str:
    """Recall of "undertrained" and false alarms on the rest, per piece of the method."""
    rows: dict[str, list[int]] = {}
    for sample in selected:
        levels = measure_levels(sample.curves)
        if sample.curves.epochs < 3 or find_divergence(levels) is not None:
            continue
        flags = _pieces(measure(levels))
        flags["shipped diagnoser (label undertrained)"] = (
            diagnose_run(sample.curves).label is Label.UNDERTRAINED
        )
        paying = sample.truth is Label.UNDERTRAINED
        for name, flag in flags.items():
            row = rows.setdefault(name, [0, 0, 0, 0])  # hits, paying, false alarms, rest
            row[0 if paying else 2] += flag
            row[1 if paying else 3] += 1
    lines = [f"#### {title}: telling still-paying samples from the rest", "",
             "| piece | recall on undertrained | false alarms on the rest |", "|---|---|---|"]
    for name, (hits, undertrained, alarms, rest) in rows.items():
        recall = hits / undertrained if undertrained else None
        lines.append(f"| {name} | {_pct(recall)} ({hits}/{undertrained}) "
                     f"| {_pct(alarms / rest if rest else None)} ({alarms}/{rest}) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("train", "heldout", "all"), default="train")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--errors", action="store_true")
    parser.add_argument("--pieces", action="store_true",
                        help="compare the pieces of the undertrained decision")
    parser.add_argument("--plans", choices=("with", "without", "both"), default="both",
                        help="give every sample its run's plan, none (a CSV's user), or both")
    parser.add_argument("--cv-families", type=int, metavar="K",
                        help="leave-family-out cross-validation in K folds of the training "
                             "half (ignores --split: the held-out half is never read)")
    parser.add_argument("--cv-waves", action="store_true",
                        help="leave-one-wave-out cross-validation of the training half "
                             "(ignores --split: the held-out half is never read)")
    parser.add_argument("--rules-only", action="store_true",
                        help="the rules' labels alone, without the arbiter (_arbiter.py)")
    args = parser.parse_args()
    if args.cv_families is not None or args.cv_waves:
        train = [r for r in load_runs() if r["split"] == "train"]
        if args.cv_waves:
            wave_cross_validation(train, errors=args.errors)
        else:
            cross_validation(train, args.cv_families, errors=args.errors)
        return
    runs = [r for r in load_runs() if args.split in ("all", r["split"])]
    if args.pieces:
        everything, _ = samples(runs, cuts=True)
        print(pieces_markdown(f"{args.split}: whole runs + cuts", everything))
        return
    for plans in (True, False):
        if args.plans != "both" and plans != (args.plans == "with"):
            continue
        kind = "with plans" if plans else "without plans"
        whole, _ = samples(runs, cuts=False, plans=plans)
        everything, ambiguous = samples(runs, cuts=True, plans=plans)
        for title, selected, amb in ((f"whole runs, {kind}", whole, None),
                                     (f"whole runs + cuts, {kind}", everything, ambiguous)):
            report = evaluate(selected, rules_only=args.rules_only)
            if args.markdown:
                print(markdown(f"{args.split} half — {title}", report, amb))
                print(reliability_markdown(f"{args.split} half — {title}", report))
            else:
                print(f"{args.split:8s} {title:34s} n={report.total:4d} "
                      f"acc={_pct(report.accuracy)} balanced={_pct(report.balanced_accuracy)} "
                      f"healthy-false-alarms={_pct(report.healthy_false_alarms)}"
                      + f" ece={report.ece:.3f}"
                      + (f" ambiguous-cuts={amb}" if amb is not None else ""))
            if args.errors:
                for sample, predicted, summary in report.errors:
                    print(f"   {sample.name:45s} {sample.truth:12s} -> {predicted:12s} {summary}")


if __name__ == "__main__":
    main()
