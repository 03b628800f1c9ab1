"""What an external run is sent (``RunCreate``, ``EpochLog``) and answers with (``Verdict``,
``RunPublic``, ``RunDetail``): the wire shapes of ``/v1/runs``, also parsed by the client.

A metric's non-finite value (NaN, ±inf: a diverged run) is sent as JSON ``null``, as
everywhere in the curves JSON; a metric the run does not log is left out. Strings such as
``"NaN"`` are refused: ``null`` is the one spelling. (Python's ``json`` also writes a bare
``NaN`` token, which is not JSON but is read as the same non-finite value.)
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from studies.db import RunState
from studies.diagnosis import MAX_CURVE_EPOCHS, Diagnosis, Label
from studies.runs._optuna import RESERVED_ATTR_PREFIX, RESERVED_ATTRS
from studies.schemas import JsonFloat, JsonObject, api_path
from studies.spec import Objective
from trainer._curves import METRIC_KEYS

# What one epoch may carry: the four curves and the learning rate (curves JSON names).
EPOCH_KEYS: Final = (*METRIC_KEYS, "lr")
MAX_PARAMS: Final = 100
MAX_PARAM_TEXT: Final = 200

ProjectName = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", min_length=1, max_length=80),
    Field(description="Letters, digits, `.`, `_`, `-`; the Optuna study is `runs:<project>`."),
]
RunName = Annotated[
    str,
    # Printable text: a name shown in the dashboard and in logs must not carry control bytes.
    StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$", min_length=1, max_length=120),
]


def _not_reserved(name: str) -> str:
    # A text parameter is an Optuna user attribute: it must not overwrite sweepdoc's own.
    if name in RESERVED_ATTRS or name.startswith(RESERVED_ATTR_PREFIX):
        raise ValueError(
            f"{name!r} is one of sweepdoc's own Optuna attributes "
            f"({', '.join(sorted(RESERVED_ATTRS))}, {RESERVED_ATTR_PREFIX}…): rename the parameter"
        )
    return name


ParamName = Annotated[
    str,
    StringConstraints(pattern=r"^[^\x00-\x1f\x7f]+$", max_length=100),
    AfterValidator(_not_reserved),
]


def _param_value(value: Any) -> Any:
    # One clear reason instead of one per member of the union below.
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    if isinstance(value, str) and len(value) <= MAX_PARAM_TEXT:
        return value
    raise ValueError(
        f"give a finite number, true/false or text of at most {MAX_PARAM_TEXT} characters "
        "(params are flat: name nested ones with dots, e.g. optim.lr)"
    )


# Smart union: each value keeps its own JSON type (1 stays an int, true a bool).
ParamValue = Annotated[bool | int | float | str, BeforeValidator(_param_value)]


def _number_or_null(value: Any) -> Any:
    # Strict: "0.5", "NaN" and true are refused, with the one way to say "not finite".
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise ValueError("give a number, or null for a non-finite value (NaN, inf)")
    return value


# A metric: a number, or null for a non-finite one.
Metric = Annotated[float | None, BeforeValidator(_number_or_null)]


class RunCreate(BaseModel):
    """`POST /v1/runs`: start a run of a user's own training loop."""

    model_config = ConfigDict(extra="forbid")

    project: ProjectName
    name: RunName
    params: dict[ParamName, ParamValue] = Field(
        default_factory=dict,
        max_length=MAX_PARAMS,
        description='The run\'s hyperparameters, flat (`{"lr": 0.1, "optimizer": "sgd"}`); '
        "numbers become Optuna parameters, the rest user attributes.",
    )
    num_classes: Annotated[int, Field(strict=True, ge=2, le=1_000_000)] | None = Field(
        default=None, description="Classes of the task: lets the diagnoser see chance level."
    )
    objective: Objective = Field(
        default=Objective.VAL_ACC,
        description="What the project's Optuna study optimizes; the first run of a project "
        "fixes it, and every run must log it.",
    )


class EpochLog(BaseModel):
    """`POST /v1/runs/{id}/epochs`: one finished epoch. The first epoch's metrics are the
    run's: every later epoch must carry the same ones (null for a non-finite value)."""

    model_config = ConfigDict(extra="forbid")

    epoch: Annotated[int, Field(strict=True, ge=1, le=MAX_CURVE_EPOCHS)] = Field(
        description="1-based, without gaps; resending an epoch with the same values is safe."
    )
    train_loss: Metric = None
    val_loss: Metric = None
    train_acc: Metric = Field(default=None, description="A fraction in [0, 1].")
    val_acc: Metric = Field(default=None, description="A fraction in [0, 1].")
    lr: Metric = Field(default=None, description="The learning rate at the end of the epoch.")

    @field_validator("train_acc", "val_acc")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        if value is not None and math.isfinite(value) and not 0.0 <= value <= 1.0:
            raise ValueError(f"{value} is outside [0, 1] (give fractions, not percentages)")
        return value

    @field_validator("lr")
    @classmethod
    def _non_negative(cls, value: float | None) -> float | None:
        if value is not None and value < 0.0:
            raise ValueError(f"{value} is negative")
        return value

    @model_validator(mode="after")
    def _some_metric(self) -> EpochLog:
        if not set(METRIC_KEYS) & self.model_fields_set:
            raise ValueError(f"an epoch needs at least one of {', '.join(METRIC_KEYS)}")
        return self

    @property
    def logged(self) -> list[str]:
        """The keys this epoch carries, in curves order."""
        return [key for key in EPOCH_KEYS if key in self.model_fields_set]

    def values(self) -> dict[str, float]:
        """The carried values, non-finite ones (null) as NaN, as the database keeps them."""
        return {key: _nan_if_none(getattr(self, key)) for key in self.logged}


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


class Action(StrEnum):
    """What the server tells the loop after an epoch."""

    CONTINUE = "continue"
    STOP = "stop"


class Verdict(BaseModel):
    """The answer to one epoch: go on, or stop (and why)."""

    model_config = ConfigDict(frozen=True)

    run_id: int
    epoch: int
    action: Action
    reason: str | None = Field(description="Why to stop (null when continuing).")
    state: RunState = Field(description="The run's state now.")
    diagnosis: Diagnosis | None = Field(
        default=None, description="The live check's diagnosis when it says stop."
    )

    @property
    def stop(self) -> bool:
        return self.action is Action.STOP


class RunPublic(BaseModel):
    """A run as lists show it; the numbers come from its epochs so far."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    id: int
    project: str
    name: str
    state: RunState
    objective: Objective
    params: dict[str, Any]
    num_classes: int | None
    metrics: list[str] = Field(description="What the run logs (its first epoch's keys).")
    epochs_done: int
    label: Label | None
    confidence: float | None
    final_val_acc: JsonFloat = None
    best_val_acc: JsonFloat = None
    final_val_loss: JsonFloat = None
    stop_reason: str | None
    created_at: datetime
    finished_at: datetime | None
    optuna_study_name: str
    optuna_trial_number: int

    url: ClassVar[str] = api_path("runs", "run")


class RunDetail(RunPublic):
    """One run with its curves and its diagnosis (stored once it ended)."""

    best_epoch: int | None = None
    curves: dict[str, Any] = Field(description="The curves JSON; null for non-finite values.")
    diagnosis: JsonObject | None = None
