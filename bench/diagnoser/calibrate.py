"""Fit the diagnoser's confidence calibration on the TRAINING half of the labeled set.

For every training sample (whole runs, their cuts and their sum-reduced views, dataset.py),
each once with its run's plan and once without, take the rules' raw score and whether the
label was right; per stage of the plan (``studies.diagnosis.Stage``: finished, in progress,
unknown = no plan) and predicted label, fit an isotonic regression of "right" on the score
(scikit-learn, here only: the diagnoser reads the fitted knots without it) and write them to
studies/diagnosis/calibration.json. Whole runs and cuts are calibrated apart wherever the
plan tells them apart: a finished run is right far more often than a cut with the same
verdict. Each step of the fitted function is shrunk towards the label's overall share right
by PRIOR_WEIGHT pseudo-samples: a step fitted on three samples must not claim 0% or 100%.
The held-out half is never read here: evaluate.py reports its reliability tables and ECEs.
Labels come from the rules and, for runs in progress, the arbiter (fit_arbiter.py). The
arbiter's verdicts are CROSS-FITTED before the maps see them: each sample the arbiter
applies to is refereed by an arbiter fitted without that sample's wave (a batch of recipes
made together), so the maps learn how often the arbiter is right on recipes it never saw —
what a user's run is — not on its own training rows, where it is right far more often (the
confidence of the first calibration, fitted in-sample, ran high on every new wave).

    .venv/bin/python bench/diagnoser/calibrate.py [--dry-run]
"""

from __future__ import annotations

import sys
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and dataset.py beside this file

from dataset import Sample, load_runs, samples, waves_of  # noqa: E402
from fit_arbiter import Row, row  # noqa: E402
from fit_arbiter import fit as fit_arbiter  # noqa: E402
from fitting import SPLIT, dry_run_requested, save_fitted  # noqa: E402
from sklearn.isotonic import IsotonicRegression  # noqa: E402

from studies.diagnosis._arbiter import Arbiters  # noqa: E402
from studies.diagnosis._calibration import CALIBRATION_FILE, Calibration  # noqa: E402
from studies.diagnosis._plan import Stage  # noqa: E402
from studies.diagnosis._result import Label  # noqa: E402
from studies.diagnosis._run import Judgement, judge  # noqa: E402

PRIOR_WEIGHT = 4.0


def _shrunk(model: IsotonicRegression, scores: list[float], right: list[float]) -> list[float]:
    """The fitted step values, each shrunk towards the overall share right."""
    overall = sum(right) / len(right)
    fitted = model.predict(scores)
    steps: dict[float, list[float]] = defaultdict(list)
    for value, outcome in zip(fitted, right, strict=True):
        steps[round(float(value), 9)].append(outcome)
    out = []
    for value in model.y_thresholds_:
        members = steps.get(round(float(value), 9), [])
        n = len(members)
        # Plus one right and one wrong pseudo-sample: never exactly 0 or 1.
        out.append((float(value) * n + overall * PRIOR_WEIGHT + 1.0) / (n + PRIOR_WEIGHT + 2.0))
    return out


@dataclass(frozen=True)
class Outcome:
    """One judged sample as the calibration sees it: its stage, the predicted label, the
    rules' raw score and whether the label was right."""

    stage: Stage
    label: Label
    score: float
    right: bool


def outcome(sample: Sample, judgement: Judgement | None = None) -> Outcome:
    """Judge *sample* (or take *judgement*, already made of it); the calibration never
    changes labels."""
    judgement = judgement or judge(sample.curves)
    verdict = judgement.verdict
    return Outcome(
        judgement.stage,
        verdict.label,
        min(1.0, max(0.0, verdict.confidence)),
        verdict.label == sample.truth,
    )


def fit(outcomes: Iterable[Outcome], described: str, *, verbose: bool = False) -> Calibration:
    """Per stage and predicted label, the shrunk isotonic map of "right" on the raw score."""
    scores: dict[tuple[Stage, Label], list[float]] = defaultdict(list)
    right: dict[tuple[Stage, Label], list[float]] = defaultdict(list)
    counts: Counter[Stage] = Counter()
    for o in outcomes:
        scores[o.stage, o.label].append(o.score)
        right[o.stage, o.label].append(float(o.right))
        counts[o.stage] += 1
    stages: dict[Stage, dict[Label, object]] = defaultdict(dict)
    for stage, label in sorted(scores):
        key = (stage, label)
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        model.fit(scores[key], right[key])
        stages[stage][label] = {
            "scores": [round(float(x), 6) for x in model.X_thresholds_],
            "probabilities": [round(y, 6) for y in _shrunk(model, scores[key], right[key])],
            "samples": len(scores[key]),
        }
        if verbose:
            print(f"{stage:12s} {label:13s} n={len(scores[key]):4d} right={sum(right[key]):4.0f}")
    return Calibration.model_validate(
        {
            "fitted_on": {stage: f"{described}, {n} samples" for stage, n in counts.items()},
            "stages": stages,
        }
    )


@dataclass(frozen=True)
class Judged:
    """A sample as the shipped diagnoser judged it, with the arbiter's inputs where the
    arbiter applies (so that an arbiter fitted without it can referee it)."""

    sample: Sample
    plans: bool  # judged with its run's plan
    outcome: Outcome
    row: Row | None


def judge_all(selected: list[Sample], plans: bool, wave_of: dict[str, int]) -> list[Judged]:
    """*selected* judged by the shipped diagnoser; *wave_of* maps a run id to its wave."""
    judged = []
    for sample in selected:
        judgement = judge(sample.curves)
        found = row(sample, judgement, wave_of.get(sample.run_id, 0))
        judged.append(Judged(sample, plans, outcome(sample, judgement), found))
    return judged


def refereed(judged: Judged, arbiters: Arbiters | None) -> Outcome:
    """*judged*'s outcome with *arbiters* deciding where one of them applies."""
    model = None if judged.row is None or arbiters is None else arbiters.of(judged.row.kind)
    if judged.row is None or model is None:
        return judged.outcome
    label, shares = model.choose(judged.row.x)
    return Outcome(judged.outcome.stage, label, shares[label], label is judged.sample.truth)


def cross_fitted(judged: list[Judged]) -> list[Outcome]:
    """Each outcome of *judged* with the arbiter's verdict, where it applies, given by an
    arbiter fitted on the OTHER waves' rows of *judged* only."""
    waves = {j.row.wave for j in judged if j.row is not None}
    arbiters = {}
    for wave in sorted(waves):
        rows = [j.row for j in judged if j.row is not None and j.row.wave != wave]
        arbiters[wave] = fit_arbiter(rows, f"without wave {wave}") if rows else None
    return [refereed(j, None if j.row is None else arbiters[j.row.wave]) for j in judged]


def judge_training_half(runs: list[dict[str, Any]]) -> list[Judged]:
    """Every sample of *runs* (cuts and sum-reduced views), once with its run's plan and once
    without, as the shipped diagnoser judges it."""
    wave_of = waves_of(runs)
    judged = []
    for plans in (True, False):
        judged += judge_all(samples(runs, cuts=True, plans=plans)[0], plans, wave_of)
    return judged


def main() -> None:
    dry_run = dry_run_requested(__doc__ or "", CALIBRATION_FILE)
    runs = [r for r in load_runs() if r["split"] == SPLIT]
    outcomes = cross_fitted(judge_training_half(runs))
    calibration = fit(outcomes, f"bench/diagnoser, {SPLIT} split: {len(runs)} runs, the "
                                "arbiter's verdicts cross-fitted by wave", verbose=True)
    save_fitted(calibration, CALIBRATION_FILE, dry_run=dry_run)


if __name__ == "__main__":
    main()
