"""Fit the diagnoser's arbiter (studies/diagnosis/_arbiter.py) on the TRAINING half of the
labeled set, and say how well it does on waves it was not fitted on.

Every training sample (whole runs, cuts and sum-reduced views, each once with its run's plan
and once without, as calibrate.py takes them) that the arbiter applies to — a run in
progress, or an open-ended one (no plan given, or a plan finished), logging all four curves —
gives one row: the arbiter's features (the measured pieces and the rules' own verdict,
``_arbiter.features``), the kind of run (``_arbiter.kind_of``) and the true label. Each kind
gets its own model, fitted on its own rows: a multinomial logistic regression (scikit-learn,
here only) on clipped (1st–99th percentile of the training rows) and standardised features,
class-balanced: every label weighs alike, as in the balanced accuracy the diagnoser is judged
by. C (the inverse regularisation strength) is kept small: few, strongly regularised weights
carry best to recipes the set does not hold.

Before it writes studies/diagnosis/arbiter.json it prints LEAVE-ONE-WAVE-OUT figures: each
wave of the training half predicted by a model fitted on the other waves (a wave is a batch
of recipes made together, so this is the nearest the training half comes to "recipes never
seen"), against the rules alone on the same rows. The held-out half is never read here.
Run calibrate.py after it (the confidence maps are fitted to the final scores).

    .venv/bin/python bench/diagnoser/fit_arbiter.py [--dry-run]
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and dataset.py beside this file

from dataset import Sample, load_runs, samples, waves_of  # noqa: E402
from fitting import SPLIT, dry_run_requested, save_fitted  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from studies.diagnosis import _arbiter as arbiter  # noqa: E402
from studies.diagnosis._run import Judgement, judge  # noqa: E402

# Chosen by the leave-one-wave-out balanced accuracy this script prints, on waves 1–9 (session
# of 2026-12-02): C 0.01 / 0.03 / 0.1 / 0.3 / 1 → 90.1 / 90.5 / 90.0 / 89.1 / 88.8 %, healthy
# alarms 5.2 / 5.4 / 7.1 / 9.4 / 10.3 % — the stronger the regularisation, the better it
# carried to a wave it had not seen, down to 0.03.
C = 0.03
CLIP_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class Row:
    """One training sample the arbiter applies to."""

    x: list[float]
    truth: int  # index into arbiter.LABELS
    rule: int  # the rules' label, index into arbiter.LABELS
    wave: int
    family: str
    kind: arbiter.ArbiterKind = arbiter.ArbiterKind.IN_PROGRESS
    # Fitted on, or only judged: a finished plan's run is judged by the open-ended model but
    # not fitted on (fitted on them too, it read runs without a plan worse, leave-one-wave-out:
    # docs/diagnoser.md, the arbiter).
    fitted: bool = True


def row(sample: Sample, judgement: Judgement, wave: int) -> Row | None:
    """The arbiter's row for *sample* as *judgement* read it, or None where the arbiter
    does not apply (the rules stand)."""
    rules, m, labels = judgement.rules, judgement.measures, arbiter.LABELS
    if rules is None or m is None or rules.label not in labels or sample.truth not in labels:
        return None  # a diverged run is the rules' to call (_arbiter.LABELS)
    x = arbiter.features(m, rules.label)
    if x is None:
        return None
    kind = arbiter.kind_of(m)
    fitted = kind is arbiter.ArbiterKind.IN_PROGRESS or m.levels.curves.plan is None
    truth, rule = labels.index(sample.truth), labels.index(rules.label)
    return Row(x, truth, rule, wave, sample.family, kind, fitted)


def training_rows(runs: list[dict[str, Any]]) -> list[Row]:
    """The rows of *runs*' samples, each once with its run's plan and once without."""
    wave_of = waves_of(runs)
    rows = []
    for plans in (True, False):
        for sample in samples(runs, cuts=True, plans=plans)[0]:
            found = row(sample, judge(sample.curves, rules_only=True), wave_of[sample.run_id])
            if found is not None:
                rows.append(found)
    return rows


def fit(rows: list[Row], described: str) -> arbiter.Arbiters:
    """One model per kind of run among *rows*, each fitted on that kind's rows (those
    fitted on: Row.fitted)."""
    fitted = [r for r in rows if r.fitted]
    kinds = sorted({r.kind for r in fitted})
    return arbiter.Arbiters(
        models=[_fit_kind([r for r in fitted if r.kind is k], k, described) for k in kinds]
    )


def _fit_kind(rows: list[Row], kind: arbiter.ArbiterKind, described: str) -> arbiter.ArbiterModel:
    x = np.array([r.x for r in rows])
    y = np.array([r.truth for r in rows])
    low, high = np.percentile(x, CLIP_PERCENTILES, axis=0)
    clipped = np.clip(x, low, high)
    mean, scale = clipped.mean(axis=0), clipped.std(axis=0)
    scale[scale == 0.0] = 1.0  # a constant column (e.g. an indicator no row sets)
    model = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
    model.fit((clipped - mean) / scale, y)
    coef = np.zeros((len(arbiter.LABELS), x.shape[1]))
    intercept = np.full(len(arbiter.LABELS), -30.0)  # a label no training row has: never chosen
    if len(model.classes_) == 2:
        # Two labels: one row of weights, the second label's logit against the first's 0.
        first, second = model.classes_
        coef[first], intercept[first] = 0.0, 0.0
        coef[second], intercept[second] = model.coef_[0], model.intercept_[0]
    else:
        for row_index, label_index in enumerate(model.classes_):
            coef[label_index] = model.coef_[row_index]
            intercept[label_index] = model.intercept_[row_index]
    return arbiter.ArbiterModel(
        kind=kind,
        fitted_on=f"{described}; {len(rows)} {kind.value} rows",
        features=arbiter.feature_names(),
        labels=list(arbiter.LABELS),
        clip_low=[round(float(v), 6) for v in low],
        clip_high=[round(float(v), 6) for v in high],
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        coef=[[round(float(v), 6) for v in r] for r in coef],
        intercept=[round(float(v), 6) for v in intercept],
    )


def balanced(truth: list[int], predicted: list[int]) -> tuple[float, float]:
    """Balanced accuracy over the labels present, and the healthy false-alarm rate."""
    recalls = []
    for label in sorted(set(truth)):
        picked = [p for t, p in zip(truth, predicted, strict=True) if t == label]
        recalls.append(sum(p == label for p in picked) / len(picked))
    healthy = [p for t, p in zip(truth, predicted, strict=True) if t == 0]
    alarms = sum(p != 0 for p in healthy) / len(healthy) if healthy else 0.0
    return float(np.mean(recalls)), alarms


def leave_one_wave_out(rows: list[Row]) -> dict[str, float]:
    """Each wave of one kind's *rows* predicted by a model fitted on the others; the rules
    alone beside it."""
    predicted: dict[int, int] = {}
    waves = sorted({r.wave for r in rows})
    kind = rows[0].kind
    for wave in waves:
        model = _fit_kind([r for r in rows if r.wave != wave and r.fitted], kind, "fold")
        for i, r in enumerate(rows):
            if r.wave == wave:
                predicted[i] = arbiter.LABELS.index(model.choose(r.x)[0])
    out: dict[str, float] = {}
    print(f"{kind.value} rows, leave-one-wave-out (balanced accuracy, healthy alarms):")
    for wave in [*waves, 0]:
        chosen = [i for i, r in enumerate(rows) if wave in (0, r.wave)]
        truth = [rows[i].truth for i in chosen]
        rule_bal, rule_fa = balanced(truth, [rows[i].rule for i in chosen])
        arb_bal, arb_fa = balanced(truth, [predicted[i] for i in chosen])
        name = "all" if wave == 0 else f"wave {wave}"
        print(f"  {name:7s} n={len(chosen):5d}  rules {rule_bal:.3f} / {rule_fa:.3f}   "
              f"arbiter {arb_bal:.3f} / {arb_fa:.3f}")
        if wave == 0:
            out = {"rows": float(len(chosen)), "rules_balanced": round(rule_bal, 4),
                   "arbiter_balanced": round(arb_bal, 4), "rules_healthy_alarms":
                   round(rule_fa, 4), "arbiter_healthy_alarms": round(arb_fa, 4)}
    return out


def main() -> None:
    dry_run = dry_run_requested(__doc__ or "", arbiter.ARBITER_FILE)
    runs = [r for r in load_runs() if r["split"] == SPLIT]
    rows = training_rows(runs)
    print(f"{len(rows)} rows; truths {Counter(arbiter.LABELS[r.truth].value for r in rows)}")
    fitted = fit(rows, f"bench/diagnoser, {SPLIT} split: {len(runs)} runs, with and without "
                       f"plans, C={C}")
    models = []
    for model in fitted.models:
        cv = leave_one_wave_out([r for r in rows if r.kind is model.kind])
        models.append(model.model_copy(
            update={"cross_validation": {"leave_one_wave_out_" + k: v for k, v in cv.items()}}))
    save_fitted(arbiter.Arbiters(models=models), arbiter.ARBITER_FILE, dry_run=dry_run)


if __name__ == "__main__":
    main()
