"""Diagnose one run: the entry points `diagnose_run` and `live_check`."""

import math

from studies.diagnosis._advice import recommend
from studies.diagnosis._curves import Curves
from studies.diagnosis._diverge import Divergence, find_divergence
from studies.diagnosis._findings import find_problems
from studies.diagnosis._measure import Measures, chance_levels, filled, measure
from studies.diagnosis._result import Diagnosis, Evidence, Label
from studies.diagnosis._rules import Verdict, decide
from studies.diagnosis._stats import argmax, argmin

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


def _confidence(value: float) -> float:
    """Clamped to [0, 1]; a NaN from absurd inputs (1e300 losses) reads as a coin flip."""
    return round(min(1.0, max(0.0, value)), 3) if math.isfinite(value) else 0.5


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _basic_evidence(curves: Curves, study_best_val_acc: float | None) -> dict[str, object]:
    """Evidence any run has, diverged or not: finals, bests, chance levels, what is missing."""
    chance_acc, chance_loss = chance_levels(curves)
    notes = []
    if curves.train_acc is None and curves.val_acc is None:
        notes.append("no accuracies given: judged from the losses only")
    if curves.train_loss is None and curves.val_loss is None:
        notes.append("no losses given: judged from the accuracies only")
    if curves.val_acc is None and curves.val_loss is None:
        notes.append("no validation curves: overfitting cannot be seen")
    if curves.train_acc is None and curves.train_loss is None:
        notes.append("no training curves: the train/val gap cannot be measured")
    if curves.num_classes is None:
        notes.append("num_classes not given: chance level unknown")

    def last(values: list[float | None] | None) -> float | None:
        return None if values is None else values[-1]

    facts: dict[str, object] = {
        "epochs": curves.epochs,
        "metrics": curves.metrics,
        "notes": notes,
        "num_classes": curves.num_classes,
        "chance_acc": _round(chance_acc),
        "chance_loss": _round(chance_loss),
        "final_train_loss": _round(last(curves.train_loss)),
        "final_val_loss": _round(last(curves.val_loss)),
        "final_train_acc": _round(last(curves.train_acc)),
        "final_val_acc": _round(last(curves.val_acc)),
        "study_best_val_acc": study_best_val_acc,
    }
    if curves.val_acc is not None and any(v is not None for v in curves.val_acc):
        accs = [v if v is not None else -1.0 for v in curves.val_acc]
        best = argmax(accs)
        facts |= {"best_val_acc": _round(accs[best]), "best_val_acc_epoch": best + 1}
    if curves.val_loss is not None and any(v is not None for v in curves.val_loss):
        losses = [v if v is not None else float("inf") for v in curves.val_loss]
        best = argmin(losses)
        facts |= {"min_val_loss": _round(losses[best]), "min_val_loss_epoch": best + 1}
    return facts


def _measured_evidence(m: Measures) -> dict[str, object]:
    val = m.val_metric
    return {
        "window": m.window,
        "gap_final": _round(None if m.gap is None else m.gap[-1]),
        "gap_at_best": _round(None if m.gap is None else m.gap[m.best_index]),
        "gap_trend": _round(m.gap_trend, 5),
        "val_loss_rise": _round(m.val_loss_rise),
        "val_loss_rise_rel": _round(m.val_loss_rise_rel),
        "val_acc_drop": _round(m.val_acc_drop),
        "val_acc_slope": _round(None if m.val_acc is None else m.val_acc.slope, 5),
        "val_loss_slope": _round(None if m.val_loss is None else m.val_loss.slope, 5),
        "train_loss_slope": _round(None if m.train_loss is None else m.train_loss.slope, 5),
        "val_acc_trend": _round(None if m.val_acc is None else m.val_acc.tau, 3),
        "val_loss_trend": _round(None if m.val_loss is None else m.val_loss.tau, 3),
        "plateau_epochs": m.plateau_epochs,
        "val_noise": _round(None if val is None else val.noise, 5),
    }


def _best_epoch(curves: Curves) -> int | None:
    if curves.val_acc is not None:
        return argmax(filled(curves.val_acc)) + 1
    if curves.val_loss is not None:
        losses = [v if v is not None else float("inf") for v in curves.val_loss]
        return argmin(losses) + 1
    return None


def _diverged(curves: Curves, divergence: Divergence, facts: dict[str, object]) -> Diagnosis:
    evidence = Evidence.model_validate(
        facts
        | {
            "nonfinite_epochs": divergence.nonfinite_epochs[:100],
            "exploded_epoch": divergence.exploded_epoch,
        }
    )
    return _finish(
        curves, Verdict(Label.DIVERGED, divergence.confidence, divergence.reason), evidence
    )


def _finish(curves: Curves, verdict: Verdict, evidence: Evidence) -> Diagnosis:
    findings = find_problems(curves, verdict.label)
    best_epoch = _best_epoch(curves)
    lr_values = [v for v in curves.lr or () if v is not None]
    return Diagnosis(
        label=verdict.label,
        confidence=_confidence(verdict.confidence),
        summary=f"{_SUMMARIES[verdict.label]}: {verdict.reason}.",
        evidence=evidence,
        findings=findings,
        recommendations=recommend(
            verdict.label,
            epochs=curves.epochs,
            best_epoch=best_epoch,
            lr=max(lr_values) if lr_values else None,
            findings=findings,
        ),
        best_epoch=best_epoch,
    )


def diagnose_run(curves: Curves, *, study_best_val_acc: float | None = None) -> Diagnosis:
    """Label one run from its curves, with the evidence, findings and next steps.

    *study_best_val_acc* (the best validation accuracy of any trial of the same study) tells
    the diagnoser what the task allows, which sharpens the underfitting verdict.
    """
    facts = _basic_evidence(curves, study_best_val_acc)
    divergence = find_divergence(curves)
    if divergence is not None:
        return _diverged(curves, divergence, facts)
    if curves.epochs < MIN_EPOCHS:
        verdict = Verdict(
            Label.INCONCLUSIVE,
            1.0,
            f"only {curves.epochs} epoch(s) recorded; at least {MIN_EPOCHS} are needed",
        )
        return _finish(curves, verdict, Evidence.model_validate(facts))
    m = measure(curves)
    verdict = decide(m, study_best_val_acc)
    return _finish(curves, verdict, Evidence.model_validate(facts | _measured_evidence(m)))


def live_check(curves: Curves) -> Diagnosis | None:
    """After an epoch: a diverged Diagnosis when the run must stop now, else None.

    Only divergence stops a run live (a non-finite or exploded loss is seen in the epoch it
    happens; a collapse to chance once it is established), never a noisy but learning run.
    """
    divergence = find_divergence(curves)
    if divergence is None:
        return None
    return _diverged(curves, divergence, _basic_evidence(curves, None))
