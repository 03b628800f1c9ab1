"""Leave-family-out cross-validation within the TRAINING half of the labeled set.

The held-out half (wave 21) is split from the training half (waves 1–20) by wave (recipe.py),
and every wave-21 family differs from the earlier ones: its numbers measure how the diagnoser
does on recipes nothing was fitted on. Choosing a method by the training half's own numbers
(resubstitution) measures the opposite, so every method choice is made here instead: the
training half's families (the recorded recipe of a second-wave run, the id less its seed for
a first-wave one: dataset.family_of) are dealt into K folds (sorted by name, dealt in turn, so
each fold holds every kind of family); for each fold the confidence calibration
is fitted (calibrate.fit) on the OTHER folds' samples, with and without plans and with the
arbiter's verdicts cross-fitted by wave, as calibrate.py does, and the fold's samples are
scored with it. The pooled verdicts give the
accuracy, balanced accuracy, healthy false alarms and ECE; the per-fold false alarms show
how unevenly the alarms fall across families.

The rules' labels are hand-set and not refitted per fold; the arbiter (fit_arbiter.py, the
labels of runs in progress) IS refitted on the other folds' rows, so its labels, like the
calibration, are scored on families it was not fitted on. The held-out half is never read.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and the bench modules beside this file

from calibrate import Judged, Outcome, cross_fitted, fit, refereed  # noqa: E402
from dataset import Sample  # noqa: E402
from fit_arbiter import fit as fit_arbiter  # noqa: E402

from studies.diagnosis._calibration import calibrated  # noqa: E402
from studies.diagnosis._result import Label  # noqa: E402


@dataclass(frozen=True)
class Scored:
    """A training sample's verdict, with the confidence its fold's calibration gives it."""

    sample: Sample
    plans: bool  # judged with its run's plan
    outcome: Outcome
    confidence: float
    fold: int


def family_folds(families: set[str], k: int) -> dict[str, int]:
    """Each family's fold: sorted by name and dealt in turn (deterministic, and each fold
    gets a share of every dataset and label, since names start with both)."""
    if k < 2:
        raise ValueError(f"--cv-families: at least 2 folds are needed, got {k}")
    if k > len(families):
        raise ValueError(f"--cv-families: {k} folds for {len(families)} families")
    return {family: i % k for i, family in enumerate(sorted(families))}


def cross_validate(judged: list[Judged], k: int) -> list[Scored]:
    """Leave-family-out: every judged sample scored by the arbiter and calibration fitted on
    the families of the other folds."""
    folds = family_folds({j.sample.family for j in judged}, k)
    return _scored_by_fold(judged, [folds[j.sample.family] for j in judged])


def leave_one_wave_out(judged: list[Judged], wave_of: dict[str, int]) -> list[Scored]:
    """Leave-one-wave-out: each wave (a batch of recipes made together: the nearest the
    training half comes to recipes never seen) scored by the arbiter and calibration fitted
    on the other waves; *wave_of* maps a run id to its wave, and a Scored's fold is its wave."""
    return _scored_by_fold(judged, [wave_of[j.sample.run_id] for j in judged])


def _scored_by_fold(judged: list[Judged], fold_of: list[int]) -> list[Scored]:
    """Score each sample of *judged* (in fold *fold_of[i]*) by the arbiter and calibration
    fitted without its fold."""
    scored = []
    for fold in sorted(set(fold_of)):
        others = [j for j, f in zip(judged, fold_of, strict=True) if f != fold]
        rows = [j.row for j in others if j.row is not None]
        arbiter = fit_arbiter(rows, f"cross-validation fold {fold}") if rows else None
        # The fold's calibration, as calibrate.py fits the shipped one: on the other folds'
        # outcomes with the arbiter's verdicts cross-fitted by wave.
        calibration = fit(cross_fitted(others), f"cross-validation fold {fold}")
        for j, f in zip(judged, fold_of, strict=True):
            if f == fold:
                o = refereed(j, arbiter)
                confidence = calibrated(o.label, o.score, o.stage, calibration)
                scored.append(Scored(j.sample, j.plans, o, confidence, fold))
    return scored


def fold_false_alarms(scored: list[Scored]) -> dict[int, tuple[int, int]]:
    """Per fold: healthy samples given another label, and healthy samples."""
    alarms: Counter[int] = Counter()
    healthy: Counter[int] = Counter()
    for s in scored:
        if s.sample.truth is Label.HEALTHY:
            healthy[s.fold] += 1
            alarms[s.fold] += s.outcome.label is not Label.HEALTHY
    return {fold: (alarms[fold], healthy[fold]) for fold in sorted(healthy)}


def family_false_alarms(scored: list[Scored]) -> list[tuple[str, int, int]]:
    """Healthy families with alarms: (family, alarms, healthy samples), most alarms first."""
    alarms: Counter[str] = Counter()
    healthy: Counter[str] = Counter()
    for s in scored:
        if s.sample.truth is Label.HEALTHY:
            healthy[s.sample.family] += 1
            alarms[s.sample.family] += s.outcome.label is not Label.HEALTHY
    return sorted(((f, alarms[f], healthy[f]) for f in healthy if alarms[f]), key=lambda r: -r[1])
