"""Typed run configuration: ``RunConfig = DataConfig + ModelConfig + OptimConfig``.

These models are the single definition of every training setting: its type, bounds,
default and help text. The study spec's sections (studies.spec), the `sweepdoc train`
options and the follow-up planner are derived from them, so a bound changed here changes
everywhere. ``DataRecipe`` and ``OptimRecipe`` hold what a study fixes for all of its
trials; ``DataConfig`` and ``OptimConfig`` add what each run fills in (where the data lives,
the learning rate of the trial, the device, the checkpoint's resolved path).

Every model is frozen and refuses unknown fields (``extra="forbid"``), so a typo in a study
spec or a CLI flag is an error naming the field, never a silently ignored knob. The
resolved config is stored with every history and checkpoint as plain JSON
(``model_dump(mode="json")``). Cross-field rules start their message with the field they
blame ("warmup_epochs: ..."), so the spec and the CLI can name it.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from trainer._plugins import (
    PLUGIN_PREFIX,
    PluginKind,
    options_from_text,
    plugin_name,
    require_installed,
    validated_options,
)
from trainer._torchvision_names import TORCHVISION_PREFIX, check_torchvision_name

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
IMAGEFOLDER_PREFIX = "imagefolder:"
# sweepdoc's own architectures; any other ``arch`` says where it comes from by its prefix.
BUILTIN_ARCHS = ("simple", "vgg", "resnet")
# `check_arch`'s names as a JSON-schema pattern (OpenAPI); the validator stays the rule.
ARCH_PATTERN = f"^({'|'.join(BUILTIN_ARCHS)}|{TORCHVISION_PREFIX}.+|{PLUGIN_PREFIX}.+)$"

# Most epochs one run may train. Beyond it a value is almost certainly a typo (10**9) that
# would hold a worker for days; the service's SWEEPDOC_MAX_EPOCHS may only lower it.
MAX_EPOCHS = 1000

# Per-architecture default for ``ModelConfig.depth`` when it is not given.
DEFAULT_DEPTH = {"simple": 1, "vgg": 2, "resnet": 2}

DEVICE_PATTERN = re.compile(r"auto|cpu|cuda|cuda:\d+")


def check_device(value: str) -> str:
    """*value* if it names a device the trainer knows (auto, cpu, cuda, cuda:N), else
    ValueError saying what was expected. The one device check: the configs, the worker's
    options and the CLI all call it."""
    if not DEVICE_PATTERN.fullmatch(value):
        raise ValueError(f"must be auto, cpu, cuda or cuda:N, got {value!r}")
    return value


DeviceName = Annotated[str, AfterValidator(check_device)]


def check_dataset(value: str) -> str:
    """*value* if it names a built-in dataset, ``imagefolder:<path>`` or an installed
    ``plugin:<name>``, else ValueError (an unknown plugin's lists the installed ones)."""
    if value in BUILTIN_DATASETS:
        return value
    if value.startswith(IMAGEFOLDER_PREFIX) and value.removeprefix(IMAGEFOLDER_PREFIX).strip():
        return value
    name = plugin_name(value)
    if name is not None:
        require_installed(PluginKind.DATASET, name)
        return value
    raise ValueError(
        f"unknown dataset {value!r}; expected one of {', '.join(BUILTIN_DATASETS)}, "
        f"{IMAGEFOLDER_PREFIX}<folder under the data root> or {PLUGIN_PREFIX}<installed "
        "dataset plugin>"
    )


def check_arch(value: str) -> str:
    """*value* if it names a built-in architecture, a torchvision classification model
    (``torchvision:<name>``) or an installed model plugin (``plugin:<name>``), else
    ValueError (listing close torchvision names, or the installed plugins)."""
    if value in BUILTIN_ARCHS:
        return value
    if value.startswith(TORCHVISION_PREFIX):
        check_torchvision_name(value.removeprefix(TORCHVISION_PREFIX))
        return value
    name = plugin_name(value)
    if name is not None:
        require_installed(PluginKind.MODEL, name)
        return value
    builtin = ", ".join(repr(a) for a in BUILTIN_ARCHS)
    raise ValueError(
        f"unknown architecture {value!r}; expected {builtin}, "
        f"'{TORCHVISION_PREFIX}<classification model>' or '{PLUGIN_PREFIX}<installed model plugin>'"
    )


class FinetuneStrategy(StrEnum):
    """How a run initialised from a checkpoint adapts it (the seed's fine-tuning table)."""

    AUTO = "auto"  # let recommend_finetune pick from data size and dataset similarity
    FULL = "full"  # train every layer, starting from the checkpoint's weights
    LINEAR_PROBE = "linear-probe"  # freeze the backbone, train a new linear head only


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class DataRecipe(_Frozen):
    """How the images are split, subsetted, corrupted and augmented (a study's ``data``)."""

    download: bool = False
    """Let torchvision download missing files."""
    val_fraction: float = Field(
        default=0.2, gt=0.0, lt=1.0, description="Fraction of the training split held out "
        "(unused where the dataset brings its own validation split: an image folder's val/).",
    )
    # At least 1, not "at least one per class": the class count is only known once the
    # dataset is read, and the data module then refuses a subset smaller than it by name.
    train_subset: int | None = Field(
        default=None, ge=1, description="Keep only this many training images (stratified)."
    )
    # Below 1: at 1.0 no training label is right, so the run could only learn noise.
    label_noise: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="Fraction of training labels replaced by a different random class.",
    )
    augment: Literal["auto", "none", "crop", "crop+flip"] = "auto"
    """auto = crop for digit datasets, crop+flip otherwise."""
    image_size: int | None = Field(
        default=None,
        ge=4,
        le=1024,
        description="imagefolder only: resize every image to this square size "
        "(default: all images must share one size).",
    )
    # Non-negative: numpy's generators, which draw the split, refuse negative seeds.
    split_seed: int = Field(
        default=0, ge=0, description="Seed of the train/val split, subset, noise."
    )
    storage: Literal["auto", "memory", "stream"] = "auto"
    """imagefolder only: hold the images in memory (on the training device) or stream them from
    disk; auto = memory unless they exceed 2 GiB as float32."""
    dataset_options: dict[str, Any] | None = None
    """plugin datasets only: the plugin's options (a JSON object), checked against its own
    Options model; GET /v1/plugins shows their schema."""

    _options_from_text = field_validator("dataset_options", mode="before")(options_from_text)


class DataConfig(DataRecipe):
    """Which images, where they live, and the recipe that prepares them."""

    dataset: str = "digits"
    """digits | mnist | fashion-mnist | cifar10 | cifar100 | imagefolder:<path relative to the
    data root> | plugin:<installed dataset plugin>"""
    data_dir: Path | None = None
    """Dataset root; needed for everything but digits (the service fills it from
    SWEEPDOC_DATA_DIR)."""

    _known_dataset = field_validator("dataset")(check_dataset)

    @model_validator(mode="after")
    def _imagefolder_only_options(self) -> DataConfig:
        if not self.dataset.startswith(IMAGEFOLDER_PREFIX):
            if self.storage != "auto":
                raise ValueError(
                    f"storage: {self.storage!r} applies to imagefolder datasets only, got "
                    f"dataset={self.dataset!r} (it is always held in memory)"
                )
            if self.image_size is not None:
                raise ValueError(
                    "image_size: applies to imagefolder datasets only, got "
                    f"dataset={self.dataset!r}"
                )
        return self

    @model_validator(mode="after")
    def _plugin_options_valid(self) -> DataConfig:
        name = plugin_name(self.dataset)
        if name is None:
            if self.dataset_options is not None:
                raise ValueError(
                    "dataset_options: applies to plugin datasets only, got "
                    f"dataset={self.dataset!r}"
                )
            return self
        try:
            options = validated_options(PluginKind.DATASET, name, self.dataset_options)
        except ValueError as exc:
            raise ValueError(f"dataset_options.{exc}") from exc
        # Frozen model: store the options as the plugin reads them (defaults filled in).
        object.__setattr__(self, "dataset_options", options)
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

    arch: str = Field(
        default="simple",
        description="simple (plain conv stacks), vgg (VGG 3x3 stacks), resnet (residual "
        "blocks), torchvision:<classification model, e.g. resnet18> or plugin:<installed "
        "model plugin>; the settings below up to zero_init_residual shape the built-in ones.",
        json_schema_extra={"pattern": ARCH_PATTERN},
    )
    width: int = Field(default=32, ge=1, le=1024, description="Channels of the first stage.")
    # At most 32 per stage: room for the CIFAR ResNets of He et al. 2016 (ResNet-110 has 18
    # basic blocks per stage); anything deeper on sweepdoc's small images is a typo.
    depth: int = Field(
        default=0,
        ge=0,
        le=32,
        description="Convolutions per stage (simple, vgg) or residual blocks per stage "
        "(resnet); 0 or absent = the architecture's default (simple 1, vgg 2, resnet 2).",
    )
    stages: int = Field(default=2, ge=1, le=6, description="Stages; each halves H and W.")
    norm: Literal["batch", "layer", "none"] = "batch"
    """Normalization after each convolution."""
    activation: Literal["relu", "gelu", "sigmoid", "tanh", "leaky_relu"] = "relu"
    """Non-linearity after each normalization."""
    dropout: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Drop probability before the classifier."
    )
    zero_init_residual: bool = True
    """resnet: start each block's last norm at γ=0."""
    options: dict[str, Any] | None = None
    """plugin models only: the plugin's options (a JSON object), checked against its own Options
    model; GET /v1/plugins shows their schema."""
    weights_file: str | None = None
    """torchvision models only: a state dict to start from, a path relative to the data root
    (never downloaded); another class count gets a fresh head."""

    _known_arch = field_validator("arch")(check_arch)
    _options_from_text = field_validator("options", mode="before")(options_from_text)

    @field_validator("options")
    @classmethod
    def _plugin_options_valid(
        cls, value: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        arch = info.data.get("arch")  # absent when the arch itself was refused
        name = None if arch is None else plugin_name(arch)
        if name is None:
            if value is not None and arch is not None:
                raise ValueError(f"applies to plugin models only, got arch={arch!r}")
            return value
        return validated_options(PluginKind.MODEL, name, value)  # defaults filled in

    @field_validator("weights_file")
    @classmethod
    def _torchvision_weights(cls, value: str | None, info: ValidationInfo) -> str | None:
        arch = info.data.get("arch")
        if value is not None and arch is not None and not arch.startswith(TORCHVISION_PREFIX):
            raise ValueError(f"applies to torchvision models only, got arch={arch!r}")
        return value

    @property
    def is_builtin(self) -> bool:
        """One of sweepdoc's own architectures (not torchvision's, not a plugin's)."""
        return self.arch in BUILTIN_ARCHS

    @model_validator(mode="after")
    def _resolve_depth(self) -> ModelConfig:
        if self.depth == 0 and self.is_builtin:
            # Frozen model: resolve the default once, at construction.
            object.__setattr__(self, "depth", DEFAULT_DEPTH[self.arch])
        return self


class OptimRecipe(_Frozen):
    """The training recipe a study fixes for every trial: optimizer, schedule,
    regularisation, precision (a study's ``train``)."""

    epochs: int = Field(default=10, ge=1, le=MAX_EPOCHS, description="Epochs to train.")
    # 8192: a larger batch than any split sweepdoc trains on holds (and a GPU's memory).
    batch_size: int = Field(default=64, ge=1, le=8192, description="Images per step.")
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    """sgd (with momentum), adam, or adamw (decoupled decay)."""
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0, description="sgd only.")
    nesterov: bool = False
    """sgd only; needs momentum > 0."""
    # At most 1: a stronger L2 pull than the loss itself is a typo for 1e-something.
    weight_decay: float = Field(default=5e-4, ge=0.0, le=1.0, description="L2 penalty.")
    # Constant by default: the seed's recipe reads the curves of a learning-rate search,
    # and a decaying schedule flattens every curve at its end, which hides "still
    # improving" (undertrained) runs. Studies set their own schedule explicitly.
    schedule: Literal["none", "cosine", "step"] = "none"
    """Learning-rate schedule after the warm-up."""
    warmup_epochs: float = Field(
        default=0.0,
        ge=0.0,
        description="Linear warm-up length in epochs (fractions allowed; below epochs).",
    )
    step_size: int = Field(
        default=10, ge=1, le=MAX_EPOCHS, description="step schedule: epochs per decay."
    )
    step_gamma: float = Field(default=0.1, gt=0.0, le=1.0, description="step schedule factor.")
    grad_clip: float | None = Field(
        default=None, gt=0.0, description="Clip the global gradient norm to this; None = off."
    )
    label_smoothing: float = Field(
        default=0.0, ge=0.0, lt=1.0, description="Share of the target spread over all classes."
    )
    # Non-negative for the same reason as split_seed (numpy draws the data order).
    seed: int = Field(
        default=0, ge=0, description="Seed of init, data order, augmentation, dropout."
    )
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Forward-pass precision: bf16 runs it under bfloat16 autocast (weights, gradients and
    optimizer state stay float32); auto = bf16 on CUDA, fp32 on CPU (bf16 autocast works on a
    CPU too, usually slower there)."""
    finetune: FinetuneStrategy = FinetuneStrategy.AUTO
    """With init_from: auto (the seed's table picks), full, or linear-probe."""

    @model_validator(mode="after")
    def _consistent(self) -> OptimRecipe:
        if self.nesterov and (self.optimizer != "sgd" or self.momentum == 0.0):
            raise ValueError(
                "nesterov: needs optimizer=sgd and momentum > 0, got "
                f"optimizer={self.optimizer}, momentum={self.momentum}"
            )
        if self.warmup_epochs > 0 and self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs: must be smaller than epochs, got "
                f"warmup_epochs={self.warmup_epochs} epochs={self.epochs}"
            )
        return self


class OptimConfig(OptimRecipe):
    """One run's recipe: the study's, plus its learning rate, device and checkpoint."""

    lr: float = Field(default=0.01, gt=0.0, description="Peak learning rate.")
    device: DeviceName = "auto"
    """auto | cpu | cuda | cuda:N"""
    init_from: Path | None = None
    """Checkpoint to start from (fine-tuning)."""


class RunConfig(_Frozen):
    """Everything one training run needs."""

    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (paths as strings): safe for JSON files and for
        ``torch.load(weights_only=True)`` checkpoints."""
        return self.model_dump(mode="json")
