"""Typed run configuration: ``RunConfig = DataConfig + ModelConfig + OptimConfig``.

Every model is frozen and refuses unknown fields (``extra="forbid"``), so a typo in a study
spec or a CLI flag is an error naming the field, never a silently ignored knob. The
resolved config is stored with every history and checkpoint as plain JSON
(``model_dump(mode="json")``).
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
IMAGEFOLDER_PREFIX = "imagefolder:"

# Per-architecture default for ``ModelConfig.depth`` when it is not given.
DEFAULT_DEPTH = {"simple": 1, "vgg": 2, "resnet": 2}

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:\d+)$")


class FinetuneStrategy(StrEnum):
    """How a run initialised from a checkpoint adapts it (the seed's fine-tuning table)."""

    AUTO = "auto"  # let recommend_finetune pick from data size and dataset similarity
    FULL = "full"  # train every layer, starting from the checkpoint's weights
    LINEAR_PROBE = "linear-probe"  # freeze the backbone, train a new linear head only


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Frozen):
    """Which images, how they are split, subsetted, corrupted and augmented."""

    dataset: str = Field(
        default="digits",
        description="digits | mnist | fashion-mnist | cifar10 | cifar100 | "
        "imagefolder:<path relative to data_dir>",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Dataset root; needed for everything but digits (the service fills it "
        "from SWEEPDOC_DATA_DIR).",
    )
    download: bool = Field(default=False, description="Let torchvision download missing files.")
    val_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of the training split held out."
    )
    train_subset: int | None = Field(
        default=None, ge=1, description="Keep only this many training images (stratified)."
    )
    label_noise: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Fraction of training labels replaced by a different random class.",
    )
    augment: Literal["auto", "none", "crop", "crop+flip"] = Field(
        default="auto", description="auto = crop for digit datasets, crop+flip otherwise."
    )
    image_size: int | None = Field(
        default=None,
        ge=4,
        description="imagefolder only: resize every image to this square size "
        "(default: all images must share one size).",
    )
    split_seed: int = Field(default=0, description="Seed of the train/val split, subset, noise.")
    storage: Literal["auto", "memory", "stream"] = Field(
        default="auto",
        description="imagefolder only: hold the images in memory (on the training device) "
        "or stream them from disk; auto = memory unless they exceed 2 GiB as float32.",
    )

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        if value in BUILTIN_DATASETS:
            return value
        if value.startswith(IMAGEFOLDER_PREFIX) and value[len(IMAGEFOLDER_PREFIX) :].strip():
            return value
        raise ValueError(
            f"must be one of {', '.join(BUILTIN_DATASETS)} or imagefolder:<path>, got {value!r}"
        )

    @model_validator(mode="after")
    def _imagefolder_only_options(self) -> DataConfig:
        if not self.dataset.startswith(IMAGEFOLDER_PREFIX):
            if self.storage != "auto":
                raise ValueError(
                    f"storage={self.storage!r} applies to imagefolder datasets only, got "
                    f"dataset={self.dataset!r} (it is always held in memory)"
                )
            if self.image_size is not None:
                raise ValueError(
                    f"image_size applies to imagefolder datasets only, got dataset={self.dataset!r}"
                )
        return self

    @property
    def is_digit_dataset(self) -> bool:
        """Digits, MNIST and Fashion-MNIST: a horizontal flip changes the class (or the
        garment's handedness) so flipping is off by default."""
        return self.dataset in ("digits", "mnist", "fashion-mnist")

    @property
    def resolved_augment(self) -> Literal["none", "crop", "crop+flip"]:
        """The augmentation in use once ``auto`` is resolved."""
        if self.augment != "auto":
            return self.augment
        return "crop" if self.is_digit_dataset else "crop+flip"


class ModelConfig(_Frozen):
    """Architecture as data; input channels, image size and classes come from the dataset."""

    arch: Literal["simple", "vgg", "resnet"] = "simple"
    width: int = Field(default=32, ge=1, le=1024, description="Channels of the first stage.")
    depth: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Convolutions per stage (simple, vgg) or residual blocks per stage "
        "(resnet); 0 or absent = the architecture's default (simple 1, vgg 2, resnet 2).",
    )
    stages: int = Field(default=2, ge=1, le=6, description="Stages; each halves H and W.")
    norm: Literal["batch", "layer", "none"] = "batch"
    activation: Literal["relu", "gelu", "sigmoid", "tanh", "leaky_relu"] = "relu"
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Drop probability before the classifier."
    )
    zero_init_residual: bool = Field(
        default=True, description="resnet: start each block's last norm at γ=0."
    )

    @model_validator(mode="after")
    def _resolve_depth(self) -> ModelConfig:
        if self.depth == 0:
            # Frozen model: resolve the default once, at construction.
            object.__setattr__(self, "depth", DEFAULT_DEPTH[self.arch])
        return self


class OptimConfig(_Frozen):
    """The training recipe: optimizer, schedule, regularisation, device."""

    lr: float = Field(default=0.01, gt=0.0, description="Peak learning rate.")
    epochs: int = Field(default=10, ge=1, le=10_000)
    batch_size: int = Field(default=64, ge=1, le=65_536)
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd only.")
    nesterov: bool = Field(default=False, description="sgd only; needs momentum > 0.")
    weight_decay: float = Field(default=5e-4, ge=0.0)
    # Constant by default: the seed's recipe reads the curves of a learning-rate search,
    # and a decaying schedule flattens every curve at its end, which hides "still
    # improving" (undertrained) runs. Studies set their own schedule explicitly.
    schedule: Literal["none", "cosine", "step"] = "none"
    warmup_epochs: float = Field(
        default=0.0, ge=0.0, description="Linear warm-up length in epochs (fractions allowed)."
    )
    step_size: int = Field(default=10, ge=1, description="step schedule: epochs per decay.")
    step_gamma: float = Field(default=0.1, gt=0.0, le=1.0, description="step schedule factor.")
    grad_clip: float | None = Field(
        default=None, gt=0.0, description="Clip the global gradient norm to this; None = off."
    )
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=1.0)
    seed: int = Field(default=0, description="Seed of init, data order, augmentation, dropout.")
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto",
        description="Forward-pass precision: bf16 runs it under bfloat16 autocast (weights, "
        "gradients and optimizer state stay float32); auto = bf16 on CUDA, fp32 on CPU "
        "(bf16 autocast works on a CPU too, usually slower there).",
    )
    init_from: Path | None = Field(
        default=None, description="Checkpoint to start from (fine-tuning)."
    )
    finetune: FinetuneStrategy = FinetuneStrategy.AUTO

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not _DEVICE_PATTERN.match(value):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
        return value

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimConfig:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0.0):
            raise ValueError(
                "nesterov needs optimizer=sgd and momentum > 0, got "
                f"optimizer={self.optimizer}, momentum={self.momentum}"
            )
        return self


class RunConfig(_Frozen):
    """Everything one training run needs."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (paths as strings): safe for JSON files and for
        ``torch.load(weights_only=True)`` checkpoints."""
        return self.model_dump(mode="json")
