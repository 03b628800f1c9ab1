"""What a run log became: the curves, and which column or tag became which curve (and why
the others did not). Typed so the CLI prints it and the API returns it as the same object."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from studies.diagnosis import Curves
from studies.errors import StudiesError


class LogFormat(StrEnum):
    """The formats a run log may come in (``auto`` guesses from the path or the text)."""

    AUTO = "auto"
    JSON = "json"
    CSV = "csv"
    TENSORBOARD = "tensorboard"


class Aggregation(StrEnum):
    """How several logged values of one epoch became that epoch's value."""

    ONE_PER_EPOCH = "one_per_epoch"  # the log held one value per epoch: taken as it is
    LAST = "last"  # a per-epoch key (``*_epoch``, Keras' ``epoch_*``): its last value
    MEAN = "mean"  # per-step values: their mean over the epoch


class IgnoreReason(StrEnum):
    """Why a column or tag did not become a curve."""

    INDEX = "index"  # epoch, step, time: it numbers the rows
    SUPERSEDED = "superseded"  # another key of the same curve was preferred
    UNRECOGNISED_METRIC = "unrecognised_metric"  # looks like a metric, but not one of the curves
    NOT_A_METRIC = "not_a_metric"  # neither an index nor metric-like (or not numeric)
    EMPTY = "empty"  # no value at all


class ChosenBy(StrEnum):
    """Who chose the column or tag of a curve."""

    MAP = "map"  # the user's --map CURVE=KEY (the API's "map")
    NAME = "name"  # recognised from its name


class MappedCurve(BaseModel):
    """One curve of the result and the column or tag it came from."""

    model_config = ConfigDict(frozen=True)

    curve: str = Field(description="The curves key filled (train_loss, val_acc, lr, …).")
    source: str = Field(description="The CSV column or TensorBoard tag it was read from.")
    aggregation: Aggregation = Field(description="How one epoch's values became one value.")
    chosen_by: ChosenBy


class IgnoredKey(BaseModel):
    """A column or tag that did not become a curve, and why."""

    model_config = ConfigDict(frozen=True)

    source: str
    reason: IgnoreReason
    detail: str = Field(description="The reason in words, with what to do about it.")


class CurveMapping(BaseModel):
    """Which column or tag became which curve; nothing in the log is left out of it."""

    model_config = ConfigDict(frozen=True)

    format: LogFormat = Field(description="The format the log was read as (never auto).")
    epochs: int = Field(description="Epochs in the resulting curves.")
    mapped: list[MappedCurve]
    ignored: list[IgnoredKey]
    notes: list[str] = Field(
        default_factory=list,
        description="What else was done: epochs dropped, steps grouped into epochs.",
    )

    def lines(self) -> list[str]:
        """The mapping for people: one line per curve, per ignored key and per note."""
        width = max((len(m.curve) for m in self.mapped), default=0)
        out = [f"read as {self.format.value}, {self.epochs} epochs:"]
        for m in self.mapped:
            how = _AGGREGATION_WORDS[m.aggregation]
            by = ", from --map" if m.chosen_by is ChosenBy.MAP else ""
            out.append(f"  {m.curve:<{width}} <- {m.source}  ({how}{by})")
        if self.ignored:
            out.append("ignored:")
            out += [f"  {i.source}: {i.reason.value}, {i.detail}" for i in self.ignored]
        out += [f"note: {note}" for note in self.notes]
        return out


_AGGREGATION_WORDS: Final = {
    Aggregation.ONE_PER_EPOCH: "one value per epoch",
    Aggregation.LAST: "last value of each epoch",
    Aggregation.MEAN: "mean of each epoch's steps",
}


class RunLog(BaseModel):
    """A run log read into the diagnoser's curves, with the mapping that made them."""

    model_config = ConfigDict(frozen=True)

    curves: Curves
    mapping: CurveMapping


class RunLogError(StudiesError):
    """A run log that cannot become curves; *field* names the column, tag or option at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


Points = list[tuple[float, float]]  # (position: epoch number or step, value) in log order


@dataclass
class RawLog:
    """What a reader found: numeric series per key, and the keys it could not read."""

    format: LogFormat
    by_epoch: bool  # positions are epoch numbers (else steps)
    series: dict[str, Points] = field(default_factory=dict)
    # Keys whose values are not numbers, with where: chosen, they are an error; else ignored.
    non_numeric: dict[str, str] = field(default_factory=dict)
    ignored: list[IgnoredKey] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Said when no key became a metric curve: the likely cause, in this format's terms.
    nothing_chosen_hint: str = ""
