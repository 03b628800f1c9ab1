"""Synthetic images, the same for the same seed: each class is a bright horizontal band at
its own height on a noisy background, so a small CNN learns it in a few epochs (and the
random crops and horizontal flips sweepdoc applies by default keep every image's class)."""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch.utils.data import TensorDataset

from trainer import PluginDataset


class Options(BaseModel):
    """The dataset's own options (a study's ``data.dataset_options``)."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, ge=0, description="Seed of the images and labels.")
    classes: int = Field(default=3, ge=2, le=4, description="Classes (one band each).")
    per_class: int = Field(default=40, ge=5, le=10_000, description="Training images per class.")
    val_per_class: int = Field(
        default=0, ge=0, le=10_000, description="Own val images per class; 0: sweepdoc splits."
    )
    image_size: int = Field(default=8, ge=4, le=64, description="Side of the square images.")


def _images(options: Options, per_class: int, generator: torch.Generator) -> tuple[Any, Any]:
    side = options.image_size
    band = side // options.classes
    labels = torch.arange(options.classes).repeat_interleave(per_class)  # (N,)
    images = 0.3 * torch.rand(len(labels), 1, side, side, generator=generator)  # (N, 1, H, W)
    for label in range(options.classes):
        images[labels == label, :, label * band : (label + 1) * band, :] += 1
    return images, labels


def load(config: Any) -> PluginDataset:
    """Both splits as the options ask: tensors for training, a Dataset for validation."""
    options = Options.model_validate(config.dataset_options or {})
    generator = torch.Generator().manual_seed(options.seed)
    train = _images(options, options.per_class, generator)
    val = None
    if options.val_per_class:
        val = TensorDataset(*_images(options, options.val_per_class, generator))
    return PluginDataset(
        train=train, val=val, classes=[f"band-{c}" for c in range(options.classes)]
    )
