"""Diagnose one run: the entry points `diagnose_run` and `live_check`.

The data flows one way: validated Curves → ``measure_levels`` (once) → divergence → (for a
finite run of ≥ 3 epochs) ``measure`` (once: segments, smoothed series, forecasts) → the
rules' verdict → for a run in progress, the arbiter's (_arbiter.py) → calibrated confidence,
evidence, findings and advice.
"""

from dataclasses import dataclass

from studies.diagnosis._advice import recommend
from studies.diagnosis._arbiter import arbitrate
from studies.diagnosis._calibration import calibrated
from studies.diagnosis._curves import Curves
from studies.diagnosis._diverge import STUCK_MIN_EPOCHS, Divergence, find_divergence
from studies.diagnosis._evidence import basic_evidence, forecast_of, measured_evidence
from studies.diagnosis._findings import find_problems
from studies.diagnosis._measure import Levels, Measures, measure, measure_levels
from studies.diagnosis._plan import Stage, stage_of
from studies.diagnosis._result import Diagnosis, Evidence, Forecast, Label
from studies.diagnosis._rules import decide
from studies.diagnosis._stats import argmax, argmin
from studies.diagnosis._verdict import Verdict

MIN_EPOCHS = 3
"""Fewer epochs than this show no trend: the run is inconclusive unless it diverged."""

_SUMMARIES = {
    Label.HEALTHY: "Healthy",
    Label.OVERFITTING: "Overfitting",
    Label.UNDERFITTING: "Underfitting",
    Label.UNDERTRAINED: "Undertrained",
    Label.DIVERGED: "Diverged",
    Label.INCONCLUSIVE: "Inconclusive",
}


def _best_epoch(levels: Levels) -> int | None:
    if levels.val_acc is not None:
        return argmax(levels.val_acc) + 1
    if levels.val_loss is not None:
        return argmin(levels.val_loss) + 1
    return None


def _stable_lr(levels: Levels) -> float | None:
    """The learning rate of the epoch whose (smoothed) training loss was lowest, when the
    recorded LR rose after it (a warm-up raising the rate past what the network tolerates);
    else None."""
    lowest, rates = levels.lowest_train_loss_epoch, levels.curves.lr
    if lowest is None or rates is None:
        return None
    at = rates[lowest]
    later = [r for r in rates[lowest + 1 :] if r is not None]
    if at is None or at <= 0.0 or not later or max(later) <= at:
        return None
    return at


def _finish(
    levels: Levels,
    verdict: Verdict,
    evidence: Evidence,
    stage: Stage,
    forecast: Forecast | None = None,
) -> Diagnosis:
    findings = find_problems(levels, verdict.label)
    best_epoch = _best_epoch(levels)
    lr_values = [v for v in levels.curves.lr or () if v is not None]
    return Diagnosis(
        label=verdict.label,
        confidence=calibrated(verdict.label, verdict.confidence, stage),
        summary=f"{_SUMMARIES[verdict.label]}: {verdict.reason}.",
        evidence=evidence,
        findings=findings,
        recommendations=recommend(
            verdict.label,
            epochs=levels.epochs,
            best_epoch=best_epoch,
            lr=max(lr_values) if lr_values else None,
            findings=findings,
            forecast=forecast,
            # Only a diverged run's advice reads it: not worked out for every diagnosis.
            stable_lr=_stable_lr(levels) if verdict.label is Label.DIVERGED else None,
        ),
        best_epoch=best_epoch,
        forecast=forecast,
    )


@dataclass(frozen=True)
class Judgement:
    """A run's verdict with its raw (uncalibrated) score, before the advice is written."""

    levels: Levels
    verdict: Verdict
    evidence: Evidence
    stage: Stage  # what the confidence is calibrated on
    forecast: Forecast | None = None
    measures: Measures | None = None  # a finite run of ≥ 3 epochs: what the rules read
    rules: Verdict | None = None  # ... and the rules' own verdict, before the arbiter's


def _diverged(levels: Levels, divergence: Divergence, facts: dict[str, object]) -> Judgement:
    evidence = Evidence.model_validate(
        facts
        | {
            "nonfinite_epochs": divergence.nonfinite_epochs[:100],
            "exploded_epoch": divergence.exploded_epoch,
        }
    )
    verdict = Verdict(Label.DIVERGED, divergence.confidence, divergence.reason)
    return Judgement(levels, verdict, evidence, stage_of(levels.curves.plan, levels.epochs))


def judge(
    curves: Curves,
    *,
    study_best_val_acc: float | None = None,
    horizon_epochs: int | None = None,
    rules_only: bool = False,
) -> Judgement:
    """The verdict on *curves* with its raw score (what the calibration is fitted to);
    *rules_only* leaves the arbiter out (what bench/diagnoser/fit_arbiter.py fits it on)."""
    if horizon_epochs is not None and horizon_epochs < 1:
        raise ValueError(f"horizon_epochs must be at least 1, got horizon_epochs={horizon_epochs}")
    levels = measure_levels(curves)
    facts = basic_evidence(levels, study_best_val_acc)
    divergence = find_divergence(levels)
    if divergence is not None:
        return _diverged(levels, divergence, facts)
    if curves.epochs < MIN_EPOCHS:
        verdict = Verdict(
            Label.INCONCLUSIVE,
            1.0,
            f"only {curves.epochs} epoch(s) recorded; at least {MIN_EPOCHS} are needed",
        )
        stage = stage_of(curves.plan, curves.epochs)
        return Judgement(levels, verdict, Evidence.model_validate(facts), stage)
    m = measure(levels, horizon=horizon_epochs)
    rules = decide(m, study_best_val_acc)
    verdict = (
        rules if rules_only else arbitrate(m, rules, study_context=study_best_val_acc is not None)
    )
    evidence = Evidence.model_validate(facts | measured_evidence(m))
    return Judgement(levels, verdict, evidence, m.stage, forecast_of(m), m, rules)


def diagnose_run(
    curves: Curves,
    *,
    study_best_val_acc: float | None = None,
    horizon_epochs: int | None = None,
) -> Diagnosis:
    """Label one run from its curves, with the evidence, findings, forecast and next steps.

    *study_best_val_acc* (the best validation accuracy of any trial of the same study) tells
    the diagnoser what the task allows, which sharpens the underfitting verdict.
    *horizon_epochs* is the epoch the forecast looks at (default: twice the epochs so far).
    """
    j = judge(curves, study_best_val_acc=study_best_val_acc, horizon_epochs=horizon_epochs)
    return _finish(j.levels, j.verdict, j.evidence, j.stage, j.forecast)


def _diverged_before(curves: Curves) -> bool:
    """The epoch before the last was already read as never learned or collapsed."""
    return (
        curves.epochs > 1
        and find_divergence(measure_levels(curves.prefix(curves.epochs - 1))) is not None
    )


def live_check(curves: Curves) -> Diagnosis | None:
    """After an epoch: a diverged Diagnosis when the run must stop now, else None.

    Only divergence stops a run live (a non-finite or exploded loss is seen in the epoch it
    happens; a collapse to chance once it is established), never a noisy but learning run.
    Only the light measurements are taken (no smoothing, no forecast): ≤ 1 ms at 1,000 epochs.
    """
    levels = measure_levels(curves)
    divergence = find_divergence(levels)
    if divergence is None:
        return None
    if not divergence.sudden and (levels.epochs < STUCK_MIN_EPOCHS or not _diverged_before(curves)):
        # Never learned (or collapsed), read off the epochs so far: a diagnosis may say so,
        # but a stop cannot be undone, so the run is stopped only once it is established —
        # from STUCK_MIN_EPOCHS on, and seen at the epoch before too. Its first epoch's
        # training loss averages the untrained network, which without normalization can
        # start far above log(K) and still learn (wave 5: 3.69 against log 9 = 2.20, at
        # chance for three epochs); a plain-SGD start can sit at chance, its loss wobbling
        # around log(K), for four epochs and then learn (wave 9: 7 classes at 7x7 pixels).
        return None
    j = _diverged(levels, divergence, basic_evidence(levels, None))
    return _finish(j.levels, j.verdict, j.evidence, j.stage)
