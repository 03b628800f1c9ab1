"""The spec's ``search`` section: which learning rates (and further dimensions) to try,
or (``sampler: range_test``) one LR range test over ``[lr_low, lr_high]``."""

from __future__ import annotations

import math
from enum import StrEnum
from functools import cache
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from studies.spec._sections import ModelSpec, TrainSpec

# Hard limits of a search: beyond these a study is almost certainly a typo (a grid of
# 10,000 points) and would occupy every worker for days. Each error names the limit.
MAX_TRIALS = 1000
MAX_POINTS_PER_DECADE = 20
# The largest learning rate a search may try: far past any rate that trains these CNNs.
MAX_LR = 10.0
DEFAULT_N_TRIALS = 20

# The seed's grid, from the largest step to the smallest.
SEED_LR_GRID: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
# A range test's default span, wider than a grid's 1e-5 … 1e-1: the curve is only readable
# when it covers the flat start (no learning yet) and the blow-up at the top, and SGD on
# these CNNs still trains at 1e-1 (the seed's grid finds its best there). Six decades in a
# few hundred steps keep the curve fine enough (fastai's lr_find spans 1e-7 … 10 in 100).
RANGE_TEST_LR_LOW = 1e-6
RANGE_TEST_LR_HIGH = 1.0
# Steps of a range test: fewer give too coarse a curve for the smoothed slope to mean
# anything; more is a training run, not a quick look (trainer._range_test.MAX_STEPS caps it).
MIN_RANGE_STEPS = 20
MAX_RANGE_STEPS = 2000


class Sampler(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    TPE = "tpe"
    RANGE_TEST = "range_test"  # one trial: the LR range test (trainer.range_test)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _positive_unique(values: list[Any], field: str) -> list[Any]:
    if not values:
        raise ValueError(f"{field}: needs at least one value")
    if len(set(values)) != len(values):
        raise ValueError(f"{field}: duplicate values in {values}")
    return values


def section_of(name: str) -> type[ModelSpec] | type[TrainSpec]:
    """The spec section (model or train) that declares the trial parameter *name*."""
    for section in (ModelSpec, TrainSpec):
        if name in section.model_fields:
            return section
    raise KeyError(f"no spec section declares {name!r}")


@cache
def _value_of(name: str) -> TypeAdapter[Any]:
    """Validates one value of the extra dimension *name* exactly as its section's field."""
    field = section_of(name).model_fields[name]
    constrained: Any = Annotated[(field.annotation, *field.metadata)]  # built at runtime
    return TypeAdapter(constrained)


class ExtraDims(_Strict):
    """Further search dimensions, each a list of values (follow-up studies); each value is
    checked against the trainer's field of the same name."""

    weight_decay: list[float] | None = None
    dropout: list[float] | None = None
    batch_size: list[int] | None = None
    width: list[int] | None = None

    @model_validator(mode="after")
    def _check_values(self) -> ExtraDims:
        for name, values in self.as_dict().items():
            _positive_unique(values, name)
            for value in values:
                try:
                    _value_of(name).validate_python(value)
                except ValidationError as exc:
                    reason = exc.errors(include_url=False)[0]["msg"]
                    raise ValueError(f"{name}: {reason}, got {value!r}") from exc
        return self

    def as_dict(self) -> dict[str, list[Any]]:
        """The dimensions that are set, in a fixed order."""
        return {k: list(v) for k, v in self.model_dump().items() if v is not None}


class SearchSpec(_Strict):
    sampler: Sampler = Field(Sampler.GRID, description="grid | random | tpe | range_test")
    lr_low: float = Field(
        1e-5,
        gt=0.0,
        le=MAX_LR,
        description=f"Lowest learning rate (range_test: default {RANGE_TEST_LR_LOW:g}).",
    )
    lr_high: float = Field(
        1e-1,
        gt=0.0,
        le=MAX_LR,
        description=f"Highest learning rate (range_test: default {RANGE_TEST_LR_HIGH:g}).",
    )
    grid: list[float] | None = Field(None, description="Explicit learning rates (grid only).")
    points_per_decade: int | None = Field(None, ge=1, le=MAX_POINTS_PER_DECADE)
    n_trials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, description=f"Trials (random / tpe); default {DEFAULT_N_TRIALS}."
    )
    extra: ExtraDims = Field(default_factory=ExtraDims)
    range_steps: int | None = Field(
        None,
        ge=MIN_RANGE_STEPS,
        le=MAX_RANGE_STEPS,
        description="Steps of a range test (range_test only); default one epoch, at least "
        "100 and at most 300.",
    )

    @model_validator(mode="before")
    @classmethod
    def _range_test_defaults(cls, data: Any) -> Any:
        """A range test's own default span where the spec gives none (stored specs are
        dumped with both ends, so this decides once, at submission)."""
        if isinstance(data, dict) and data.get("sampler") == Sampler.RANGE_TEST.value:
            data = {"lr_low": RANGE_TEST_LR_LOW, "lr_high": RANGE_TEST_LR_HIGH, **data}
        return data

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        _positive_unique(value, "grid")
        bad = [v for v in value if not (math.isfinite(v) and 0.0 < v <= MAX_LR)]
        if bad:
            raise ValueError(f"learning rates must be in (0, {MAX_LR:g}], got {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpec:
        if self.lr_low > self.lr_high:
            raise ValueError(
                f"lr_low: must not exceed lr_high, got lr_low={self.lr_low} lr_high={self.lr_high}"
            )
        if self.sampler is not Sampler.RANGE_TEST and self.range_steps is not None:
            raise ValueError(f"range_steps: only for sampler range_test, got {self.sampler}")
        if self.sampler is Sampler.RANGE_TEST:
            self._check_range_test()
        elif self.sampler is Sampler.GRID:
            if self.grid is not None and self.points_per_decade is not None:
                raise ValueError("grid: give either grid or points_per_decade, not both")
            if self.n_trials is not None:
                raise ValueError("n_trials: only for sampler random or tpe; a grid runs each point")
            if not self.lr_grid():
                raise ValueError(
                    f"lr_low: none of the seed's learning rates {list(SEED_LR_GRID)} lies in "
                    f"[lr_low, lr_high] = [{self.lr_low}, {self.lr_high}]; give search.grid "
                    "or search.points_per_decade"
                )
        else:
            if self.grid is not None or self.points_per_decade is not None:
                raise ValueError(
                    f"sampler: grid and points_per_decade need sampler grid, got {self.sampler}"
                )
        return self

    def _check_range_test(self) -> None:
        """A range test is one run over [lr_low, lr_high]: nothing to sample or enumerate."""
        if self.lr_high <= self.lr_low:
            raise ValueError(
                f"lr_high: a range test needs lr_high above lr_low, got lr_low={self.lr_low} "
                f"lr_high={self.lr_high}"
            )
        for name in ("grid", "points_per_decade", "n_trials"):
            if getattr(self, name) is not None:
                raise ValueError(f"{name}: not used by sampler range_test (it runs one trial)")
        if self.extra.as_dict():
            raise ValueError(
                "extra: sampler range_test runs one trial; search further dimensions in a "
                "follow-up study"
            )

    def trials(self) -> int:
        """Trials of a random/tpe search; a range test is one trial."""
        if self.sampler is Sampler.RANGE_TEST:
            return 1
        return self.n_trials if self.n_trials is not None else DEFAULT_N_TRIALS

    def lr_grid(self) -> list[float]:
        """The learning rates a grid study runs, largest first."""
        if self.grid is not None:
            return sorted(self.grid, reverse=True)
        if self.points_per_decade is None:
            # The seed's values within the range: all five with the default range.
            return [lr for lr in SEED_LR_GRID if self.lr_low <= lr <= self.lr_high]
        low, high = math.log10(self.lr_low), math.log10(self.lr_high)
        steps = max(1, round((high - low) * self.points_per_decade))
        if high == low:
            return [self.lr_low]
        # Rounded to 6 significant digits so the points print as the user expects (1e-3, …).
        return [float(f"{10 ** (high - i * (high - low) / steps):.6g}") for i in range(steps + 1)]
