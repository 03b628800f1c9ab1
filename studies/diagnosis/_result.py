"""The diagnoser's output: a label, the numbers behind it, findings and next steps."""

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from studies.diagnosis._plan import Stage


class Label(StrEnum):
    """What a run's curves say about it (the seed's step 2)."""

    HEALTHY = "healthy"
    OVERFITTING = "overfitting"
    UNDERFITTING = "underfitting"
    UNDERTRAINED = "undertrained"
    DIVERGED = "diverged"
    INCONCLUSIVE = "inconclusive"  # only when fewer than 3 epochs were recorded


class FindingKind(StrEnum):
    """Secondary problems read from the training-health statistics and the loss shape."""

    VANISHING_GRADIENTS = "vanishing_gradients"
    EXPLODING_GRADIENTS = "exploding_gradients"
    DYING_RELU = "dying_relu"
    OSCILLATING_LOSS = "oscillating_loss"
    LR_TOO_HIGH = "lr_too_high"
    LR_TOO_LOW = "lr_too_low"


class Evidence(BaseModel):
    """The numbers behind a verdict, so a user can check it. Epochs are 1-based.

    Smoothed values use a running median over a few epochs; slopes are Theil–Sen slopes
    (median of pairwise slopes) over the last ``window`` epochs, in units per epoch.
    """

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    epochs: int
    metrics: list[str] = Field(description="Which of the four metric lists were given.")
    notes: list[str] = Field(default_factory=list, description="What could not be checked.")
    num_classes: int | None = None
    chance_acc: float | None = None
    """1 / num_classes."""
    chance_loss: float | None = None
    """log(num_classes)."""
    nonfinite_epochs: list[int] = Field(default_factory=list)
    exploded_epoch: int | None = None
    """First epoch whose loss blew up (finite but huge)."""
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    final_train_acc: float | None = None
    final_val_acc: float | None = None
    best_val_acc: float | None = None
    best_val_acc_epoch: int | None = None
    min_val_loss: float | None = None
    min_val_loss_epoch: int | None = None
    window: int | None = None
    """Epochs in the end-of-run window."""
    gap_final: float | None = None
    """train_acc - val_acc at the end (smoothed); losses if no acc."""
    gap_at_best: float | None = None
    """The same gap at best_epoch."""
    gap_trend: float | None = None
    """Slope of the gap at the end."""
    val_loss_rise: float | None = None
    """Smoothed final val loss minus its minimum."""
    val_loss_rise_rel: float | None = None
    """val_loss_rise over the val loss's drop from start to minimum."""
    val_acc_drop: float | None = None
    """Best smoothed val acc minus the final one."""
    val_acc_slope: float | None = None
    val_loss_slope: float | None = None
    train_loss_slope: float | None = None
    val_acc_trend: float | None = None
    """Kendall's tau of val acc over the window (+1 = always up)."""
    val_loss_trend: float | None = None
    """Kendall's tau of val loss."""
    plateau_epochs: int | None = None
    """Epochs since the val metric last reached its final level."""
    val_noise: float | None = None
    """Robust epoch-to-epoch noise of the val metric (sigma)."""
    study_best_val_acc: float | None = None
    segment_start_epoch: int | None = None
    """First epoch of the segment judged: the run since its last abrupt learning-rate change
    (step decay, warm restart, end of warm-up); 1 = the whole run."""
    lr_change_epochs: list[int] = Field(
        default_factory=list, description="Epochs at which the learning rate changed abruptly."
    )
    stage: Stage | None = None
    """Where the run stands: in its plan when one is given (finished, in_progress); without one,
    in_progress towards the end its recorded LR decay implies (implied_epochs), finished once
    its recorded LR is annealed to 10% of its peak or less, else unknown. Confidence is
    calibrated per stage."""
    planned_epochs: int | None = None
    """The plan's total epochs (null without a plan)."""
    implied_epochs: int | None = None
    """Without a plan: the total epochs the recorded `lr` curve implies, when it decays as a
    cosine or linearly towards 0 (the run is then judged as in progress to that end); null
    otherwise."""
    planned_lr_fall: float | None = None
    """How many times lower the plan takes the learning rate in the epochs left than at the last
    epoch recorded (1: no fall ahead; null without a planned schedule or epochs left)."""
    val_loss_forecast: float | None = None
    """Forecast validation loss at forecast.horizon_epochs."""
    val_loss_fall_probability: float | None = None
    """Probability that the validation loss falls by a material share of its level by
    forecast.horizon_epochs."""


class Forecast(BaseModel):
    """Where the validation metric is heading, from an ensemble of learning-curve models."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    metric: str = Field(description="The curve forecast: val_acc, else val_loss.")
    now: float = Field(
        description="The forecast's level at the last epoch: the ensemble's fit, moved back to "
        "the last epochs' own level when the fit lies on their hopeful side."
    )
    best_so_far: float | None = None
    """The best the metric has shown so far (its 3-epoch running median): what a gain is counted
    from, since only a better checkpoint is worth more epochs."""
    horizon_epochs: int = Field(
        description="The epoch forecast (default: twice the epochs so far)."
    )
    at_horizon: float = Field(description="Forecast value at horizon_epochs.")
    low: float = Field(description="5th percentile of the forecast at horizon_epochs.")
    high: float = Field(description="95th percentile of the forecast at horizon_epochs.")
    asymptote: float = Field(description="Where the fitted curve levels off.")
    material_gain: float = Field(
        description="The improvement that counts as worth the epochs (accuracy points, or a "
        "share of the loss's level)."
    )
    gain_probability: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability that the forecast at horizon_epochs beats best_so_far by at "
        "least material_gain.",
    )
    eventual_gain_probability: float = Field(
        ge=0.0,
        le=1.0,
        description="... by the time the curve levels off (what the undertrained verdict is "
        "read from for a finished run, or one without a plan).",
    )
    shown_gain_probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="... at the best epoch up to horizon_epochs, the run's own epoch-to-epoch "
        "noise included (what the undertrained verdict is read from for a run with epochs left "
        "in its plan, given or implied by its LR decay).",
    )
    family: str = Field(description="Learning-curve family with the most weight in the ensemble.")


class Finding(BaseModel):
    """A secondary problem, with the number that shows it."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    kind: FindingKind
    message: str
    value: float | None = None


class Recommendation(BaseModel):
    """A concrete next step and the study-spec change it implies (dotted paths)."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    action: str
    reason: str
    spec_change: dict[str, Any] = Field(default_factory=dict)


class Diagnosis(BaseModel):
    """The verdict on one run."""

    model_config = ConfigDict(frozen=True, use_attribute_docstrings=True)

    label: Label
    confidence: float = Field(
        ge=0.0,
        le=1.0,
        description="Probability that the label is right, calibrated on the labeled set of "
        "real runs (docs/diagnoser.md).",
    )
    summary: str
    evidence: Evidence
    findings: list[Finding] = Field(default_factory=list)
    recommendations: list[Recommendation] = Field(default_factory=list)
    best_epoch: int | None = None
    forecast: Forecast | None = None
    """The validation metric forecast at a later epoch, with its interval (absent for diverged
    runs and runs under 3 epochs)."""
