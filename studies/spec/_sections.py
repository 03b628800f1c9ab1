"""The spec's ``data``, ``model`` and ``train`` sections: the trainer's own configs.

Each section subclasses the trainer model that defines its fields (type, bounds, default,
description, cross-field rules), so a study accepts exactly what a run accepts. What the
service adds on top is here and only here: the checkpoint path is a path relative to the
server's data root, resolved there with symlinks followed, or ``trial:<id>``, a stored
trial's checkpoint (studies.checkpoints resolves it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import annotated_types
from pydantic import BaseModel, Field, field_validator

from studies.errors import FieldError, SpecError
from trainer._config import DataRecipe, ModelConfig, OptimConfig, OptimRecipe
from trainer._paths import OutsideDataRoot
from trainer._paths import resolve_inside as trainer_resolve_inside


def relative_path(value: str, field: str) -> str:
    """Refuse absolute paths, ``..`` and NUL: user paths are resolved under the data root only."""
    if "\x00" in value:
        # The OS cannot take it, and PostgreSQL cannot store it: refused before either sees it.
        raise ValueError(f"{field} must not contain a NUL character")
    path = PurePosixPath(value.replace("\\", "/"))
    if not value or path.is_absolute() or ".." in path.parts or value.startswith("~"):
        raise ValueError(
            f"{field} must be a path relative to the data root without '..', got {value!r}"
        )
    return value


def resolve_inside(data_root: Path, relative: str, field: str) -> Path:
    """*relative* under *data_root*, symlinks followed; SpecError naming *field* if it ends
    up outside. The check is the trainer's one (``trainer._paths.resolve_inside``); the
    message says whose data root it is (the server's, to an API client).

    The schema already refuses ``..`` and absolute paths; this catches a symlink inside the
    data root that points out of it. Messages never show the server's absolute paths.
    """
    try:
        return trainer_resolve_inside(data_root, relative)
    except OutsideDataRoot as exc:
        reason = str(exc).replace("the data root", "the server's data root")
        raise SpecError([FieldError(field, reason)]) from exc


# ``train.init_from: "trial:<id>"``: start from that trial's stored checkpoint.
TRIAL_CHECKPOINT_PREFIX = "trial:"


def trial_reference(value: str | None) -> int | None:
    """The trial id of a ``trial:<id>`` init_from, or None for a file path (or none)."""
    if value is None or not value.startswith(TRIAL_CHECKPOINT_PREFIX):
        return None
    number = value.removeprefix(TRIAL_CHECKPOINT_PREFIX)
    if not number.isascii() or not number.isdigit() or int(number) < 1:
        raise ValueError(
            f"init_from {value!r}: a trial's checkpoint is named trial:<id>, its id a "
            "positive integer (GET /v1/studies/{id}/trials lists them)"
        )
    return int(number)


class DataSpec(DataRecipe):
    """A study's ``data``: the trainer's DataRecipe as is (the dataset is the spec's
    top-level ``dataset``; the data root is the server's)."""


class ModelSpec(ModelConfig):
    """A study's ``model``: the trainer's ModelConfig, with a torchvision model's
    ``weights_file`` held to a path under the server's data root (``check_submission``
    resolves it there)."""

    @field_validator("weights_file")
    @classmethod
    def _weights_file_relative(cls, value: str | None) -> str | None:
        return None if value is None else relative_path(value, "weights_file")


class TrainSpec(OptimRecipe):
    """A study's ``train``: the trainer's OptimRecipe, plus the checkpoint to start from as
    a path under the server's data root or a stored trial's (the learning rate is searched,
    the device is the worker's)."""

    init_from: str | None = Field(
        default=None,
        description=f"{OptimConfig.model_fields['init_from'].description} "
        "A path relative to the server's data root, or `trial:<id>` for that trial's "
        "stored checkpoint.",
    )

    @field_validator("init_from")
    @classmethod
    def _init_from_relative(cls, value: str | None) -> str | None:
        if value is None or trial_reference(value) is not None:
            return value
        return relative_path(value, "init_from")

    @property
    def init_from_trial(self) -> int | None:
        """The trial whose checkpoint init_from names (``trial:<id>``), else None."""
        return trial_reference(self.init_from)


@dataclass(frozen=True)
class FieldBounds:
    """The numeric bounds a pydantic field declares (None where it declares none)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None


def field_bounds(model: type[BaseModel], name: str) -> FieldBounds:
    """The bounds of *model*'s field *name*, read from its declaration (never copied)."""
    found: dict[str, float] = {}
    for item in model.model_fields[name].metadata:
        for kind in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, kind.capitalize())):
                found[kind] = getattr(item, kind)
    return FieldBounds(**found)
