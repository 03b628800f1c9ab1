"""The study spec: one strict, typed description of a learning-rate study.

Everything but ``dataset`` has a default, so ``{"dataset": "digits"}`` is a valid study: a
grid over the seed's five learning rates 1e-1 … 1e-5 ("Good learning rates to try",
seed/cnn-training-notes.txt). Field names are the dotted paths used by the diagnoser's
recommendations (``train.weight_decay``, ``search.lr_low``, …), see docs/architecture.md.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from studies.errors import FieldError, SpecError

if TYPE_CHECKING:
    from trainer import RunConfig

# Hard limits: a study beyond these is almost certainly a typo (a grid of 10,000 points,
# 10**9 epochs) and would occupy every worker for days. Each error names the limit.
MAX_TRIALS = 1000
MAX_EPOCHS = 1000
MAX_BATCH_SIZE = 8192
MAX_WIDTH = 1024
MAX_POINTS_PER_DECADE = 20
MAX_PARALLEL = 256
DEFAULT_N_TRIALS = 20

# The seed's grid, from the largest step to the smallest.
SEED_LR_GRID: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
IMAGEFOLDER_PREFIX = "imagefolder:"

_EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"


class Sampler(StrEnum):
    GRID = "grid"
    RANDOM = "random"
    TPE = "tpe"


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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: str, field: str) -> str:
    """Refuse absolute paths and ``..``: user paths are resolved under the data root only."""
    path = PurePosixPath(value.replace("\\", "/"))
    if not value or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise ValueError(
            f"{field} must be a path relative to the data root without '..', got {value!r}"
        )
    return value


class DataSpec(_Strict):
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="Fraction held out for val.")
    train_subset: int | None = Field(
        None, ge=10, description="Keep only this many training images (stratified)."
    )
    label_noise: float = Field(0.0, ge=0.0, lt=1.0, description="Fraction of labels randomized.")
    augment: Literal["auto", "none", "crop", "crop+flip"] = "auto"
    image_size: int | None = Field(
        None, ge=4, le=1024, description="imagefolder only: resize images to this square size."
    )
    split_seed: int = Field(0, ge=0)
    download: bool = Field(False, description="Let the worker download a missing dataset.")


class ModelSpec(_Strict):
    arch: Literal["simple", "vgg", "resnet"] = "simple"
    width: int = Field(32, ge=1, le=MAX_WIDTH, description="Channels of the first stage.")
    depth: int = Field(
        0,
        ge=0,
        le=16,
        description="Convs (simple, vgg) or blocks (resnet) per stage; 0 = the "
        "architecture's default (simple 1, vgg 2, resnet 2).",
    )
    stages: int = Field(2, ge=1, le=6)
    norm: Literal["batch", "layer", "none"] = "batch"
    activation: Literal["relu", "gelu", "sigmoid", "tanh", "leaky_relu"] = "relu"
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Drop probability.")
    zero_init_residual: bool = Field(True, description="resnet: last norm of a block at 0.")


class TrainSpec(_Strict):
    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(64, ge=1, le=MAX_BATCH_SIZE)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0005, ge=0.0, le=1.0)
    schedule: Literal["none", "cosine", "step"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0.0, le=MAX_EPOCHS, description="Linear warm-up.")
    step_size: int = Field(10, ge=1, le=MAX_EPOCHS, description="Epochs per step (step schedule).")
    step_gamma: float = Field(0.1, gt=0.0, le=1.0)
    grad_clip: float | None = Field(None, gt=0.0, description="Max gradient norm; null = off.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    seed: int = Field(0, ge=0)
    init_from: str | None = Field(
        None, description="Checkpoint to start from, relative to the data root."
    )
    finetune: Literal["auto", "full", "linear-probe"] = "auto"

    @field_validator("init_from")
    @classmethod
    def _init_from_relative(cls, value: str | None) -> str | None:
        return None if value is None else _relative_path(value, "init_from")


def _positive_unique(values: list[Any], field: str) -> list[Any]:
    if not values:
        raise ValueError(f"{field}: needs at least one value")
    if len(set(values)) != len(values):
        raise ValueError(f"{field}: duplicate values in {values}")
    return values


class ExtraDims(_Strict):
    """Further search dimensions, each a list of values (follow-up studies)."""

    weight_decay: list[float] | None = None
    dropout: list[float] | None = None
    batch_size: list[int] | None = None
    width: list[int] | None = None

    @model_validator(mode="after")
    def _check_values(self) -> ExtraDims:
        checks: dict[str, tuple[float, float]] = {
            "weight_decay": (0.0, 1.0),
            "dropout": (0.0, 0.999),
            "batch_size": (1, MAX_BATCH_SIZE),
            "width": (1, MAX_WIDTH),
        }
        for name, (low, high) in checks.items():
            values = getattr(self, name)
            if values is None:
                continue
            _positive_unique(values, name)
            bad = [v for v in values if not low <= v <= high]
            if bad:
                raise ValueError(f"{name}: values must lie in [{low}, {high}], got {bad}")
        return self

    def as_dict(self) -> dict[str, list[Any]]:
        """The dimensions that are set, in a fixed order."""
        return {k: list(v) for k, v in self.model_dump().items() if v is not None}


class SearchSpec(_Strict):
    sampler: Sampler = Sampler.GRID
    lr_low: float = Field(1e-5, gt=0.0, le=10.0)
    lr_high: float = Field(1e-1, gt=0.0, le=10.0)
    grid: list[float] | None = Field(None, description="Explicit learning rates (grid only).")
    points_per_decade: int | None = Field(None, ge=1, le=MAX_POINTS_PER_DECADE)
    n_trials: int | None = Field(
        None, ge=1, le=MAX_TRIALS, description=f"Trials (random / tpe); default {DEFAULT_N_TRIALS}."
    )
    extra: ExtraDims = Field(default_factory=ExtraDims)

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: list[float] | None) -> list[float] | None:
        if value is None:
            return None
        _positive_unique(value, "grid")
        bad = [v for v in value if not (math.isfinite(v) and 0.0 < v <= 10.0)]
        if bad:
            raise ValueError(f"learning rates must be in (0, 10], got {bad}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpec:
        if self.lr_low > self.lr_high:
            raise ValueError(
                f"lr_low: must not exceed lr_high, got lr_low={self.lr_low} lr_high={self.lr_high}"
            )
        if self.sampler is Sampler.GRID:
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

    def trials(self) -> int:
        """Trials of a random/tpe search."""
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


class StudySpec(_Strict):
    """A learning-rate study; see docs/architecture.md "Study spec" for every field."""

    name: str | None = Field(
        None, min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
    )
    dataset: str = Field(
        description="digits | mnist | fashion-mnist | cifar10 | cifar100 | "
        "imagefolder:<path relative to the data root>"
    )
    data: DataSpec = Field(default_factory=DataSpec)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    search: SearchSpec = Field(default_factory=SearchSpec)
    pruner: Pruner = Pruner.NONE
    objective: Objective = Objective.VAL_ACC
    priority: int = Field(0, ge=-1000, le=1000, description="Higher runs first.")
    max_parallel: int = Field(4, ge=1, le=MAX_PARALLEL, description="Trials running at once.")

    @field_validator("dataset")
    @classmethod
    def _dataset_known(cls, value: str) -> str:
        if value in BUILTIN_DATASETS:
            return value
        if value.startswith(IMAGEFOLDER_PREFIX):
            _relative_path(value.removeprefix(IMAGEFOLDER_PREFIX), "the image folder")
            return value
        raise ValueError(
            f"unknown dataset {value!r}; expected one of {', '.join(BUILTIN_DATASETS)} "
            f"or {IMAGEFOLDER_PREFIX}<folder under the data root>"
        )

    @model_validator(mode="after")
    def _trial_limit(self) -> StudySpec:
        count = self.trial_count()
        if count > MAX_TRIALS:
            raise ValueError(
                f"search: the study would run {count} trials, more than the limit of {MAX_TRIALS}"
            )
        if self.train.warmup_epochs >= self.train.epochs and self.train.warmup_epochs > 0:
            raise ValueError(
                f"train.warmup_epochs: must be smaller than train.epochs, got "
                f"warmup_epochs={self.train.warmup_epochs} "
                f"epochs={self.train.epochs}"
            )
        return self

    @property
    def display_name(self) -> str:
        """The name, or one made from the dataset, model and sampler when none was given."""
        if self.name:
            return self.name
        dataset = self.dataset.removeprefix(IMAGEFOLDER_PREFIX).replace("/", "-")
        return f"{dataset}-{self.model.arch}-lr-{self.search.sampler}"

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
        self, params: dict[str, Any], *, data_dir: Path, device: str = "auto"
    ) -> RunConfig:
        """The trainer's config for one trial: this spec with the trial's *params* applied."""
        from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig

        unknown = set(params) - {"lr", *ExtraDims.model_fields}
        if unknown:
            raise ValueError(f"unknown trial parameters: {sorted(unknown)}")
        model = self.model.model_dump()
        train = self.train.model_dump()
        for name in ("width", "dropout"):
            if name in params:
                model[name] = params[name]
        for name in ("weight_decay", "batch_size"):
            if name in params:
                train[name] = params[name]
        init_from = train.pop("init_from")
        return RunConfig(
            data=DataConfig(dataset=self.dataset, data_dir=data_dir, **self.data.model_dump()),
            model=ModelConfig(**model),
            optim=OptimConfig(
                lr=float(params["lr"]),
                device=device,
                init_from=_inside(data_dir, init_from, "train.init_from")
                if init_from is not None
                else None,
                **train,
            ),
        )


@dataclass(frozen=True)
class SpecLimits:
    """One server's own limits, at or below the hard ones above.

    The service builds this from its settings; nothing in this layer reads the environment.
    """

    max_trials: int = MAX_TRIALS
    max_epochs: int = MAX_EPOCHS


def _inside(data_root: Path, relative: str, field: str) -> Path:
    """*relative* under *data_root*, symlinks followed; SpecError if it ends up outside.

    The schema already refuses ``..`` and absolute paths; this catches a symlink inside the
    data root that points out of it. Messages never show the server's absolute paths.
    """
    root = data_root.expanduser().resolve()
    candidate = (root / relative).resolve()
    if candidate != root and root not in candidate.parents:
        raise SpecError(
            [
                FieldError(
                    field,
                    f"{relative!r} resolves outside the server's data root (through a "
                    "symlink); it must lie inside the data root",
                )
            ]
        )
    return candidate


def check_submission(spec: StudySpec, *, limits: SpecLimits, data_root: Path) -> None:
    """What the schema alone cannot check, against one server: its limits and its data root.

    Raises SpecError naming every offending field: trials or epochs over the server's
    limits, an image folder or `init_from` checkpoint that is missing or resolves outside
    the data root (symlinks followed, at submit time, so a bad path never reaches a worker).
    """
    errors: list[FieldError] = []
    trials = spec.trial_count()
    if trials > limits.max_trials:
        field = "search.n_trials" if spec.search.sampler is not Sampler.GRID else "search"
        errors.append(
            FieldError(
                field,
                f"the study would run {trials} trials, more than this server's limit of "
                f"{limits.max_trials} (its max_trials_per_study setting)",
            )
        )
    if spec.train.epochs > limits.max_epochs:
        errors.append(
            FieldError(
                "train.epochs",
                f"must be at most {limits.max_epochs} on this server (its max_epochs "
                f"setting), got {spec.train.epochs}",
            )
        )
    if spec.dataset.startswith(IMAGEFOLDER_PREFIX):
        folder = spec.dataset.removeprefix(IMAGEFOLDER_PREFIX)
        try:
            if not _inside(data_root, folder, "dataset").is_dir():
                errors.append(
                    FieldError("dataset", f"no folder {folder!r} under the server's data root")
                )
        except SpecError as exc:
            errors.extend(exc.errors)
    if spec.train.init_from is not None:
        try:
            if not _inside(data_root, spec.train.init_from, "train.init_from").is_file():
                errors.append(
                    FieldError(
                        "train.init_from",
                        f"no checkpoint file {spec.train.init_from!r} under the server's "
                        "data root",
                    )
                )
        except SpecError as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecError(errors)


# Model-level validators start their message with the field they blame ("lr_low: …"),
# since pydantic reports them at the model's own location.
_BLAMED_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)*): (.+)$", re.DOTALL)


def field_error_at(loc: tuple[int | str, ...] | list[str], message: str) -> FieldError:
    """The FieldError of a pydantic error at *loc*, blamed on the field its message names."""
    parts = [str(part) for part in loc]
    blamed = _BLAMED_FIELD.match(message)
    if blamed:
        name, message = blamed.groups()
        if name.split(".")[0] != (parts[-1] if parts else None):
            parts.extend(name.split("."))
    return FieldError(".".join(parts) or "spec", message)


def parse_spec(data: Any) -> StudySpec:
    """Validate *data* (a mapping) as a study spec; raise SpecError naming each bad field."""
    if not isinstance(data, dict):
        raise SpecError([FieldError("spec", f"expected a mapping, got {type(data).__name__}")])
    try:
        return StudySpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for err in exc.errors(include_url=False):
            message = str(err["msg"]).removeprefix("Value error, ")
            given = err.get("input")
            if err["type"] == "extra_forbidden":
                message = "unknown field (docs/architecture.md lists the spec's fields)"
            elif (
                err["type"] != "missing"
                and "got " not in message
                and not isinstance(given, dict | list)
            ):
                message = f"{message}, got {given!r}"
            errors.append(field_error_at(err["loc"], message))
        raise SpecError(errors) from exc


def load_spec_file(path: Path) -> StudySpec:
    """Read a YAML or JSON study file; SpecError names the field (or the file) and the reason."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError([FieldError("file", f"cannot read {path}: {exc.strerror}")]) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError([FieldError("file", f"{path.name} is not valid YAML/JSON: {exc}")]) from exc
    return parse_spec(data)


def default_grid_spec_path() -> Path:
    """The default study: the seed's five learning rates on digits (what `sweepdoc demo` runs)."""
    return _EXAMPLES_DIR / "digits-lr-grid.yaml"


def example_spec_paths() -> list[Path]:
    """Every example study file shipped in studies/examples/."""
    return sorted(p for p in _EXAMPLES_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json"))
