"""The diagnoser's input: one run's per-epoch curves, validated at the boundary.

The curves JSON of docs/architecture.md: the four metric lists (any non-empty subset, equal
lengths, ``null`` = a non-finite value), optional ``num_classes`` and optional per-epoch
training-health lists. Unknown keys are ignored so that ``sweepdoc train --out`` files (which
add ``status``, ``config``, ...) and other frameworks' dumps validate as they are; the Keras
names (``loss``, ``accuracy``/``acc``, ``val_accuracy``/``val_acc``) are accepted as aliases.

Losses may be on any scale and of either sign (mean or sum-reduced cross-entropy, an MSE on
targets in the hundreds, a negative log-likelihood below zero): the diagnoser judges a loss
against the run's own start, minimum and level, never against absolute numbers. An accuracy
list that is entirely null is a metric the run did not log, not a run at 0% (a null loss, in
contrast, stays evidence of divergence).

An optional ``plan`` (``_plan.Plan``) says what the run planned: its total epochs and LR
schedule, so a run with epochs or a scheduled LR drop still ahead is judged as unfinished.
"""

from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from studies.diagnosis._plan import MAX_CURVE_EPOCHS, Plan
from trainer._curves import HEALTH_KEYS as HEALTH
from trainer._curves import METRIC_KEYS as METRICS
from trainer._curves import finite_or_none

# Numbers only: strict mode rejects strings (also "NaN"), booleans and other types, while a
# float NaN/inf (from Python, or JSON's non-standard NaN literal) is accepted and normalised to
# None, the same as JSON null.
Number = Annotated[float, Field(strict=True)]
Series = Annotated[list[Number | None], Field(min_length=1, max_length=MAX_CURVE_EPOCHS)]


class Curves(BaseModel):
    """One run's curves, one entry per epoch; ``None`` marks a non-finite value."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    train_loss: Series | None = Field(
        default=None, validation_alias=AliasChoices("train_loss", "loss")
    )
    val_loss: Series | None = None
    train_acc: Series | None = Field(
        default=None, validation_alias=AliasChoices("train_acc", "accuracy", "acc")
    )
    val_acc: Series | None = Field(
        default=None, validation_alias=AliasChoices("val_acc", "val_accuracy")
    )
    num_classes: Annotated[int, Field(strict=True, ge=2, le=1_000_000)] | None = None
    lr: Series | None = None
    grad_norm: Series | None = None
    grad_norm_first: Series | None = None
    grad_norm_last: Series | None = None
    dead_relu_fraction: Series | None = None
    plan: Plan | None = Field(
        default=None,
        description="What the run planned (total epochs, LR schedule): a run with epochs "
        "left, or a scheduled LR drop ahead, is judged as unfinished. Optional.",
    )

    @field_validator(*METRICS, *HEALTH, mode="after")
    @classmethod
    def _finite_or_none(cls, values: list[float | None] | None) -> list[float | None] | None:
        return None if values is None else [finite_or_none(v) for v in values]

    @field_validator("train_acc", "val_acc", mode="after")
    @classmethod
    def _all_null_is_missing(cls, values: list[float | None] | None) -> list[float | None] | None:
        # Frameworks write a metric they never computed as a list of nulls (NaN); reading
        # it as zeros would call every such run a collapse to chance.
        if values is not None and all(v is None for v in values):
            return None
        return values

    @field_validator("train_acc", "val_acc", "dead_relu_fraction", mode="after")
    @classmethod
    def _fraction(cls, values: list[float | None] | None) -> list[float | None] | None:
        for index, value in enumerate(values or ()):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"epoch {index + 1} holds {value}, outside [0, 1] "
                    "(give fractions, not percentages)"
                )
        return values

    @field_validator(
        "lr",
        "grad_norm",
        "grad_norm_first",
        "grad_norm_last",
        mode="after",
    )
    @classmethod
    def _non_negative(cls, values: list[float | None] | None) -> list[float | None] | None:
        for index, value in enumerate(values or ()):
            if value is not None and value < 0.0:
                raise ValueError(f"epoch {index + 1} holds {value}, which is negative")
        return values

    @model_validator(mode="after")
    def _aligned(self) -> "Curves":
        lengths = {name: len(getattr(self, name)) for name in METRICS if getattr(self, name)}
        if not lengths:
            raise ValueError(
                "no curves: give at least one of train_loss, val_loss, train_acc, val_acc "
                "(an accuracy list that is entirely null counts as missing)"
            )
        lengths |= {name: len(getattr(self, name)) for name in HEALTH if getattr(self, name)}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
            raise ValueError(f"lists must have one entry per epoch, but {described}")
        if self.plan is not None and self.plan.epochs < self.epochs:
            raise ValueError(
                f"plan.epochs: {self.plan.epochs} planned, fewer than the {self.epochs} epochs "
                "recorded"
            )
        return self

    @property
    def epochs(self) -> int:
        """Number of epochs recorded."""
        return next(len(v) for name in METRICS if (v := getattr(self, name)) is not None)

    @property
    def metrics(self) -> list[str]:
        """Which of the four metric lists were given."""
        return [name for name in METRICS if getattr(self, name) is not None]

    def with_plan(self, plan: Plan | None) -> "Curves":
        """These curves with *plan* instead of their own (checked like a given plan: a
        ValidationError naming ``plan`` when it holds fewer epochs than were recorded)."""
        return Curves.model_validate({**self.model_dump(exclude={"plan"}), "plan": plan})

    def prefix(self, epochs: int) -> "Curves":
        """The same curves cut after *epochs* epochs (what the run looked like then)."""
        cut: dict[str, Any] = {"num_classes": self.num_classes, "plan": self.plan}
        for name in (*METRICS, *HEALTH):
            values = getattr(self, name)
            cut[name] = None if values is None else values[:epochs]
        return Curves.model_validate(cut)
