"""What a run PLANNED: its total epochs and learning-rate schedule (optional diagnoser input).

A run's own epochs cannot show its future: a run cut at epoch 20 of 60 with a step decay at
30 is not finished, and a plateau before a scheduled LR drop, or during a cosine run's
high-LR phase, is not convergence. The plan says so. It is given either as the planned
per-epoch learning rate (``lr``, any scale: only its shape is read) or as the trainer's
schedule recipe (``schedule``, ``warmup_epochs``, ``step_size``, ``step_gamma``: the fields
of ``trainer._config.OptimRecipe``, turned into per-epoch rates by the trainer's own
``trainer._schedule.lr_at``, so the schedule's formula is defined once). Without a plan the
diagnoser behaves as before.
"""

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

from trainer._config import OptimConfig, OptimRecipe
from trainer._schedule import lr_at

MAX_CURVE_EPOCHS: Final = 100_000
"""Most epochs one curves object, or its plan, may hold (a DoS guard, not a training limit)."""

# The trainer records the LR of each epoch's last step; the planned curve is sampled the
# same way, on this many steps per epoch (a cosine's per-epoch values barely depend on it).
_PLAN_STEPS_PER_EPOCH: Final = 100

# A planned rate may reach 0 (a cosine that ends there), never below.
Rate = Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)]


class ScheduleKind(StrEnum):
    """The trainer's learning-rate schedules after the warm-up."""

    NONE = "none"
    COSINE = "cosine"
    STEP = "step"


class Stage(StrEnum):
    """How far through its plan a diagnosed run is (what its confidence is calibrated on)."""

    FINISHED = "finished"  # a plan was given and every planned epoch is recorded
    IN_PROGRESS = "in_progress"  # a plan was given and epochs remain
    UNKNOWN = "unknown"  # no plan: a whole run and a cut look alike


class Plan(BaseModel):
    """The run's plan: total epochs, and its LR schedule as a curve or as a recipe."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)

    epochs: Annotated[int, Field(strict=True, ge=1, le=MAX_CURVE_EPOCHS)] = Field(
        description="Planned total epochs (at least the epochs recorded so far)."
    )
    lr: Annotated[list[Rate], Field(min_length=1, max_length=MAX_CURVE_EPOCHS)] | None = None
    """Planned learning rate of every epoch (its last step's), one per planned epoch; any scale.
    Give this or `schedule`, not both."""
    schedule: ScheduleKind | None = None
    """The trainer's schedule after the warm-up: none (constant), cosine (to 0 at the last step)
    or step (× step_gamma every step_size epochs)."""
    # Strict: a boolean is refused, not read as 1 (an int is still a float).
    warmup_epochs: Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)] = 0.0
    """Linear warm-up length in epochs (with `schedule`)."""
    step_size: Annotated[int, Field(strict=True, ge=1)] | None = None
    """step schedule: epochs per decay (default the trainer's)."""
    step_gamma: Annotated[float, Field(strict=True, gt=0.0, le=1.0)] | None = None
    """step schedule: factor per decay (default the trainer's)."""

    @model_validator(mode="after")
    def _consistent(self) -> "Plan":
        if self.lr is not None and self.schedule is not None:
            raise ValueError("give the planned `lr` per epoch or a `schedule`, not both")
        if self.lr is not None and len(self.lr) != self.epochs:
            raise ValueError(
                f"lr: must hold one rate per planned epoch ({self.epochs}), got {len(self.lr)}"
            )
        if self.schedule is None and (
            self.warmup_epochs or self.step_size is not None or self.step_gamma is not None
        ):
            raise ValueError("warmup_epochs, step_size and step_gamma need a `schedule`")
        if self.schedule is not ScheduleKind.STEP and (
            self.step_size is not None or self.step_gamma is not None
        ):
            raise ValueError("step_size and step_gamma apply to schedule=step only")
        if self.warmup_epochs and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs: must be smaller than epochs, got "
                f"warmup_epochs={self.warmup_epochs} epochs={self.epochs}"
            )
        return self

    @classmethod
    def of_recipe(cls, recipe: OptimRecipe) -> "Plan":
        """The plan of a run trained with the trainer's *recipe* (a study's ``train``)."""
        schedule = ScheduleKind(recipe.schedule)
        step = schedule is ScheduleKind.STEP
        return cls(
            epochs=recipe.epochs,
            schedule=schedule,
            warmup_epochs=recipe.warmup_epochs,
            step_size=recipe.step_size if step else None,
            step_gamma=recipe.step_gamma if step else None,
        )

    def planned_lr(self) -> list[float] | None:
        """The planned learning rate of every epoch (None: only the epochs are known)."""
        if self.lr is not None:
            return list(self.lr)
        if self.schedule is None:
            return None
        defaults = OptimRecipe.model_fields
        # Unvalidated on purpose: the plan's own validators checked these fields, and a plan
        # may be longer than the trainer's MAX_EPOCHS (curves from other frameworks).
        config = OptimConfig.model_construct(
            lr=1.0,
            epochs=self.epochs,
            schedule=self.schedule.value,
            warmup_epochs=self.warmup_epochs,
            step_size=self.step_size or defaults["step_size"].default,
            step_gamma=self.step_gamma or defaults["step_gamma"].default,
        )
        per = _PLAN_STEPS_PER_EPOCH
        return [
            lr_at((epoch + 1) * per - 1, steps_per_epoch=per, cfg=config)
            for epoch in range(self.epochs)
        ]


def stage_of(plan: Plan | None, epochs: int) -> Stage:
    """Where a run of *epochs* recorded epochs stands in its *plan*."""
    if plan is None:
        return Stage.UNKNOWN
    return Stage.FINISHED if epochs >= plan.epochs else Stage.IN_PROGRESS


@dataclass(frozen=True)
class Ahead:
    """What a run's plan still holds after its recorded epochs (only when epochs are left)."""

    planned_epochs: int
    epochs_left: int
    lr_now: float | None  # planned LR of the last recorded epoch, as a share of the peak
    lr_floor: float | None  # the lowest planned LR still ahead, as a share of the peak
    lr_top: float | None  # the highest planned LR still ahead, as a share of the peak

    @property
    def lr_fall(self) -> float | None:
        """How many times lower the LR is planned to go than it is now (1: no fall ahead)."""
        if self.lr_now is None or self.lr_floor is None:
            return None
        return math.inf if self.lr_floor <= 0.0 else max(1.0, self.lr_now / self.lr_floor)

    @property
    def lr_rise(self) -> float | None:
        """How many times higher the LR is planned to go than it is now (1: no rise ahead;
        a warm-up still under way rises)."""
        if self.lr_now is None or self.lr_top is None:
            return None
        return math.inf if self.lr_now <= 0.0 else max(1.0, self.lr_top / self.lr_now)


def ahead_of(plan: Plan | None, epochs: int) -> Ahead | None:
    """What *plan* holds after *epochs* recorded epochs; None without a plan or epochs left."""
    if plan is None or plan.epochs <= epochs:
        return None
    rates = plan.planned_lr()
    lr_now = lr_floor = lr_top = None
    if rates is not None and max(rates) > 0.0:
        peak, left = max(rates), rates[epochs:]
        lr_now, lr_floor, lr_top = rates[epochs - 1] / peak, min(left) / peak, max(left) / peak
    return Ahead(plan.epochs, plan.epochs - epochs, lr_now, lr_floor, lr_top)
