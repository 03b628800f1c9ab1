"""``StudySpec``: one strict, typed description of a learning-rate study."""

from __future__ import annotations

import itertools
import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studies.spec._search import MAX_TRIALS, ExtraDims, Sampler, SearchSpec, section_of
from studies.spec._sections import (
    DataSpec,
    ModelSpec,
    TrainSpec,
    relative_path,
    resolve_inside,
)
from trainer._config import (
    BUILTIN_DATASETS,
    IMAGEFOLDER_PREFIX,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    check_dataset,
)
from trainer._plugins import PLUGIN_PREFIX

MAX_PARALLEL = 256
# A study's name, given or generated, fits the database's name column (studies.db.StudyRow);
# PostgreSQL refuses a longer one (SQLite would store it).
MAX_NAME_CHARS = 80
# What `check_dataset` accepts, as a pattern for the JSON schema (OpenAPI), so clients and
# schema-driven tools generate datasets the server knows; the validator stays the rule.
# (The names and the prefix hold no regex syntax, so they stand in the pattern as they are.)
DATASET_PATTERN = f"^({'|'.join(BUILTIN_DATASETS)}|{IMAGEFOLDER_PREFIX}.*\\S.*|{PLUGIN_PREFIX}.+)$"


class Pruner(StrEnum):
    NONE = "none"
    MEDIAN = "median"
    HYPERBAND = "hyperband"


class Objective(StrEnum):
    VAL_ACC = "val_acc"  # maximize the best validation accuracy
    VAL_LOSS = "val_loss"  # minimize the best validation loss

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return "maximize" if self is Objective.VAL_ACC else "minimize"


# The most automatic follow-up rounds one study may ask for: each round is a whole study,
# so a chain of 5 already costs up to six times the first study's trials.
MAX_FOLLOW_UP_ROUNDS = 5


class FollowUpSpec(BaseModel):
    """Automatic follow-up rounds (studies.chain): when the study ends, the server submits its
    summary's follow-up spec as the next round, until the best trial is healthy, a round
    fails to improve the objective, or ``max_rounds`` follow-ups have run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rounds: int = Field(
        0,
        ge=0,
        le=MAX_FOLLOW_UP_ROUNDS,
        description="Follow-up studies the server submits after this one (0 = off). Every "
        "round carries the same budget: a chain stops after max_rounds follow-ups in all.",
    )


def stored_follow_up_rounds(spec: dict[str, Any]) -> int:
    """``follow_up.max_rounds`` of a stored (dumped) spec, read without validating it: 0 when
    absent (a spec stored before the field existed)."""
    return int((spec.get("follow_up") or {}).get("max_rounds", 0))


class StudySpec(BaseModel):
    """A learning-rate study; see docs/architecture.md "Study spec" for every field.

    Everything but ``dataset`` has a default, so ``{"dataset": "digits"}`` is a valid
    study: a grid over the seed's five learning rates 1e-1 … 1e-5 ("Good learning rates to
    try", seed/cnn-training-notes.txt). Field names are the dotted paths used by the
    diagnoser's recommendations (``train.weight_decay``, ``search.lr_low``, …).
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Shown at /docs and sent by schema-driven tools (schemathesis's examples phase).
        json_schema_extra={
            "examples": [
                {"dataset": "digits"},
                {
                    "name": "digits-random",
                    "dataset": "digits",
                    "train": {"epochs": 5},
                    "search": {"sampler": "random", "n_trials": 4},
                },
            ]
        },
    )

    name: str | None = Field(
        None, min_length=1, max_length=MAX_NAME_CHARS, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    # Required here (the trainer defaults to digits): a study names what it trains on.
    dataset: str = Field(
        description=DataConfig.model_fields["dataset"].description,
        json_schema_extra={"pattern": DATASET_PATTERN},
    )
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    pruner: Pruner = Pruner.NONE
    objective: Objective = Objective.VAL_ACC
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    max_parallel: int = Field(4, ge=1, le=MAX_PARALLEL, description="Trials running at once.")
    keep_checkpoints: int = Field(
        3,
        ge=0,
        le=MAX_TRIALS,
        description="Checkpoints kept: those of the best this-many complete trials by the "
        "objective (studies.checkpoints); the others are deleted. 0 keeps none.",
    )
    # The bounds sit on the int alone: on the union pydantic would apply them to "auto" too
    # and fail re-validating a dumped spec (what every follow-up round does).
    max_pack: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_PARALLEL)] = Field(
        "auto",
        description="Trials one worker may train as one packed model (issue 15): auto = as "
        "many as fit on a GPU, on a CPU only for narrow networks where measured faster; "
        "1 = each trial alone. A pack of K counts K against max_parallel.",
    )
    follow_up: FollowUpSpec = Field(default_factory=FollowUpSpec)

    @field_validator("dataset")
    @classmethod
    def _dataset_known(cls, value: str) -> str:
        check_dataset(value)
        if value.startswith(IMAGEFOLDER_PREFIX):
            relative_path(value.removeprefix(IMAGEFOLDER_PREFIX), "the image folder")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        count = self.trial_count()
        if count > MAX_TRIALS:
            raise ValueError(
                f"search: the study would run {count} trials, more than the limit of {MAX_TRIALS}"
            )
        try:  # the trainer's rules that need the dataset (imagefolder-only options)
            DataConfig(dataset=self.dataset, **self.data.model_dump())
        except ValidationError as exc:
            reason = str(exc.errors(include_url=False)[0]["msg"]).removeprefix("Value error, ")
            raise ValueError(f"data.{reason}") from exc
        return self

    @property
    def display_name(self) -> str:
        """The name, or one made from the dataset, model and sampler when none was given
        (the dataset part shortened so it fits ``MAX_NAME_CHARS``)."""
        if self.name:
            return self.name
        suffix = f"-{self.model.arch}-lr-{self.search.sampler}"
        dataset = self.dataset.removeprefix(IMAGEFOLDER_PREFIX).replace("/", "-")
        return dataset[: MAX_NAME_CHARS - len(suffix)] + suffix

    def trial_count(self) -> int:
        """How many trials (grid points, or n_trials) the study runs."""
        if self.search.sampler is not Sampler.GRID:
            return self.search.trials()
        return len(self.search.lr_grid()) * math.prod(
            len(v) for v in self.search.extra.as_dict().values()
        )

    def grid_points(self) -> list[dict[str, Any]]:
        """Every parameter combination of a grid study: lr × the extra dimensions."""
        if self.search.sampler is not Sampler.GRID:
            raise ValueError("grid_points() is only defined for sampler=grid")
        extra = self.search.extra.as_dict()
        names = ["lr", *extra]
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(self.search.lr_grid(), *extra.values())
        ]

    def to_run_config(
        self,
        params: dict[str, Any],
        *,
        data_dir: Path,
        device: str = "auto",
        trial_checkpoint: Path | None = None,
    ) -> RunConfig:
        """The trainer's config for one trial: this spec with the trial's *params* applied.

        *trial_checkpoint*: the stored file a ``train.init_from: "trial:<id>"`` names
        (``studies.checkpoints.init_from_file`` looks it up). Without it such a config keeps
        the reference itself as its path, which the trainer cannot open: enough for what
        only compares configs (the packing probes), never for training."""
        unknown = set(params) - {"lr", *ExtraDims.model_fields}
        if unknown:
            raise ValueError(f"unknown trial parameters: {sorted(unknown)}")
        model = self.model.model_dump()
        train = self.train.model_dump()
        for name, value in params.items():
            if name != "lr":
                (model if section_of(name) is ModelSpec else train)[name] = value
        init_from = train.pop("init_from")
        checkpoint: Path | None = None
        if self.train.init_from_trial is not None:
            checkpoint = trial_checkpoint or Path(init_from)
        elif init_from is not None:
            checkpoint = resolve_inside(data_dir, init_from, "train.init_from")
        return RunConfig(
            data=DataConfig(dataset=self.dataset, data_dir=data_dir, **self.data.model_dump()),
            model=ModelConfig(**model),
            optim=OptimConfig(
                lr=float(params["lr"]),
                device=device,
                init_from=checkpoint,
                **train,
            ),
        )
