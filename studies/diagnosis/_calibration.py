"""Calibrated confidence: the probability that a label is right, read from calibration.json.

bench/diagnoser/calibrate.py fits, per STAGE and label, an isotonic regression of "the label
was right" on the rules' raw score over the TRAINING half of the labeled set of real runs,
and writes the fitted step function here as (score, probability) knots. The stage
(``_plan.Stage``) is what the run's plan says about it: finished runs are right far more
often than cuts with the same verdict, so a finished run, a run in progress and a run
without a plan (a whole run and a cut look alike) each get their own map. At run time the
raw score is mapped through the knots by linear interpolation: no scikit-learn, one small
JSON file read once. A stage or label the file does not cover keeps its raw score.
"""

import json
from bisect import bisect_right
from functools import cache
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from studies.diagnosis._plan import Stage
from studies.diagnosis._result import Label

CALIBRATION_FILE: Final = Path(__file__).with_name("calibration.json")


class LabelCalibration(BaseModel):
    """One label's isotonic map: raw scores (increasing) and the share right at each."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scores: list[float] = Field(min_length=1)
    probabilities: list[float] = Field(min_length=1)
    samples: int = Field(ge=0, description="Training samples the map was fitted on.")


class Calibration(BaseModel):
    """Every stage's and label's map, and where each came from."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fitted_on: dict[Stage, str]
    stages: dict[Stage, dict[Label, LabelCalibration]]


@cache
def _calibration() -> Calibration | None:
    if not CALIBRATION_FILE.exists():
        return None
    return Calibration.model_validate(json.loads(CALIBRATION_FILE.read_text(encoding="utf-8")))


def _interpolate(knots: LabelCalibration, score: float) -> float:
    xs, ys = knots.scores, knots.probabilities
    if score <= xs[0]:
        return ys[0]
    if score >= xs[-1]:
        return ys[-1]
    right = bisect_right(xs, score)
    x0, x1, y0, y1 = xs[right - 1], xs[right], ys[right - 1], ys[right]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (score - x0) / (x1 - x0)


def calibrated(
    label: Label, score: float, stage: Stage, calibration: Calibration | None = None
) -> float:
    """The probability that *label* is right given the rules' raw *score* (in [0, 1]) for a
    run at *stage* of its plan, by *calibration* (default: calibration.json; the bench's
    cross-validation passes each fold's own)."""
    score = min(1.0, max(0.0, score)) if score == score else 0.5  # NaN from absurd inputs
    calibration = calibration or _calibration()
    knots = None if calibration is None else calibration.stages.get(stage, {}).get(label)
    value = score if knots is None else _interpolate(knots, score)
    return round(min(1.0, max(0.0, value)), 3)
