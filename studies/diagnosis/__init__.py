"""Curve diagnosis: label a run (or a study) from its learning curves, explain why, say what next.

Pure functions of the curves (pydantic, numpy and the standard library: no torch, no I/O
beyond reading the shipped calibration.json once), so the worker, the API and the CLI call the
same code and curves from any framework work.
See docs/diagnoser.md for the method and its measured accuracy.
"""

from studies.diagnosis._curves import Curves
from studies.diagnosis._plan import MAX_CURVE_EPOCHS, Plan, ScheduleKind, Stage
from studies.diagnosis._result import (
    Diagnosis,
    Evidence,
    Finding,
    FindingKind,
    Forecast,
    Label,
    Recommendation,
)
from studies.diagnosis._run import diagnose_run, live_check
from studies.diagnosis._study import (
    LrLabels,
    LrWindow,
    StudySummary,
    TrialOutcome,
    diagnose_study,
)

__all__ = [
    "MAX_CURVE_EPOCHS",
    "Curves",
    "Diagnosis",
    "Evidence",
    "Finding",
    "FindingKind",
    "Forecast",
    "Label",
    "LrLabels",
    "LrWindow",
    "Plan",
    "Recommendation",
    "ScheduleKind",
    "Stage",
    "StudySummary",
    "TrialOutcome",
    "diagnose_run",
    "diagnose_study",
    "live_check",
]
