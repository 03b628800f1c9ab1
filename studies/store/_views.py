"""What is derived from the stored runs: diagnoses (a trial's, the study's) and the plots."""

from __future__ import annotations

from pydantic import ValidationError

from studies import plots
from studies.db import Database, StudyRow, TrialState
from studies.diagnosis import (
    Curves,
    Diagnosis,
    StudySummary,
    TrialOutcome,
    diagnose_run,
    diagnose_study,
)
from studies.errors import ConflictError
from studies.schemas import TrialPublic, from_row
from studies.spec import Objective, SpecLimits, StudySpec, field_error_at
from studies.store._rows import study_row, trial_row
from studies.store._studies import trial_candidate
from studies.store._trials import epoch_records, study_trial_rows
from trainer import curves_json

__all__ = ["study_diagnosis", "study_lr_png", "trial_curves_png", "trial_diagnosis"]


def trial_diagnosis(db: Database, trial_id: int) -> Diagnosis:
    """The stored diagnosis, or for a running trial a provisional one from its epochs so far."""
    row = trial_row(db, trial_id)
    if row.lr_range is not None:
        raise ConflictError(
            f"trial {trial_id} is an LR range test, not a training run: nothing to diagnose "
            "(its curve and suggestion are its lr_range)"
        )
    if row.diagnosis is not None:
        return Diagnosis.model_validate(row.diagnosis)
    records = epoch_records(db, row)
    if not records:
        raise ConflictError(f"trial {trial_id} has no recorded epochs yet ({row.state})")
    num_classes = row.summary.num_classes if row.summary is not None else None
    return diagnose_run(Curves.model_validate(curves_json(records, num_classes)))


def study_diagnosis(
    db: Database, study_id: int, *, limits: SpecLimits | None = None
) -> StudySummary:
    """The study summary: labels by learning rate, best trial, lr window, next step (a
    follow-up spec within the server's *limits*; default: the spec's hard caps)."""
    study = study_row(db, study_id)
    outcomes = []
    for row in study_trial_rows(db, study_id):
        if row.params is None:
            continue  # a random/tpe slot that has not started has no learning rate yet
        if row.lr_range is not None:
            continue  # an LR range test is no training run: it has no label to summarize
        public = from_row(TrialPublic, row)
        # Ranked by the same candidate as the API's best trial (studies.results.best_trial).
        candidate = trial_candidate(row)
        outcomes.append(
            from_row(
                TrialOutcome,
                row,
                complete=candidate.complete,
                objective_value=candidate.value,
                final_val_acc=public.final_val_acc,
                best_val_acc=public.best_val_acc,
                final_val_loss=public.final_val_loss,
            )
        )
    try:
        spec = StudySpec.model_validate(study.spec)
    except ValidationError as exc:
        return _without_followup(outcomes, study, exc)
    return diagnose_study(outcomes, spec=spec, limits=limits)


def _without_followup(
    outcomes: list[TrialOutcome], study: StudyRow, refused: ValidationError
) -> StudySummary:
    """The summary of a study whose stored spec today's rules refuse (stored by an older
    version): its labels and best trial, and no follow-up, saying why.

    The follow-up is a copy of the study's spec with a few fields moved, so there is none
    to plan from a spec that no longer validates; everything else needs only the objective.
    """
    try:
        objective = Objective(study.spec.get("objective", Objective.VAL_ACC))
    except ValueError:
        objective = Objective.VAL_ACC
    # Any valid spec with the study's objective: the plan made from it is discarded below.
    stand_in = StudySpec(dataset="digits", objective=objective)
    summary = diagnose_study(outcomes, spec=stand_in)
    reasons = "; ".join(
        str(field_error_at(e["loc"], str(e["msg"]).removeprefix("Value error, ")))
        for e in refused.errors(include_url=False, include_input=False)[:3]
    )
    return summary.model_copy(
        update={
            "followup_spec": None,
            "next_step": f"No follow-up study planned: study {study.id}'s stored spec is not "
            f"valid under this server's spec rules ({reasons}). Write a new spec from the "
            "labels above and submit it.",
        }
    )


def trial_curves_png(db: Database, trial_id: int) -> bytes:
    """Train/val loss and accuracy of a trial, best epoch marked, label in the title."""
    row = trial_row(db, trial_id)
    study = study_row(db, row.study_id)
    lr = (row.params or {}).get("lr")
    title = f"{study.name} #{row.number}" + (f" lr={lr:g}" if lr is not None else "")
    return plots.trial_curves_png(
        curves_json(epoch_records(db, row), None),
        title=title,
        label=row.label,
        best_epoch=row.summary.best_epoch if row.summary is not None else None,
    )


def study_lr_png(db: Database, study_id: int) -> bytes:
    """Best validation accuracy against learning rate, points colored by label."""
    study = study_row(db, study_id)
    points = [
        plots.LrPoint(
            lr=float(t.params["lr"]), val_acc=t.best_val_acc, label=t.label, number=t.number
        )
        for t in (from_row(TrialPublic, row) for row in study_trial_rows(db, study_id))
        if "lr" in t.params and t.state is not TrialState.WAITING
    ]
    return plots.study_lr_png(points, title=f"{study.name}: accuracy vs learning rate")
