"""What a plugin package implements: the two protocols and the dataset plugin's answer.

A ``sweepdoc.models`` entry point refers to an object (usually a module) with ``build``, a
``sweepdoc.datasets`` one to an object with ``load``; either may add ``Options``, a pydantic
model of its options (trainer._plugins finds, loads and checks them). Plugin packages import
``PluginDataset`` from ``trainer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from torch import Tensor, nn
    from torch.utils.data import Dataset

    from trainer._config import DataConfig, ModelConfig


class ModelPlugin(Protocol):
    """A model plugin: ``build`` answers a module mapping (N, in_channels, H, W) images to
    (N, num_classes) logits. ``config.options`` holds its options, already checked against
    its ``Options`` and with their defaults filled in; the other ``config`` fields (width,
    dropout, ...) are there to use or ignore."""

    def build(self, config: ModelConfig, num_classes: int, in_channels: int) -> nn.Module: ...


@dataclass(frozen=True)
class PluginDataset:
    """What a dataset plugin's ``load`` returns.

    Each split is either ``(x, y)`` tensors, x (N, C, H, W) in any pixel scale (the trainer
    normalises with the training split's per-channel mean and std) and y (N,) integer class
    indices, or a map-style torch ``Dataset`` of ``(image (C, H, W) tensor, label)`` items,
    read once into memory. ``val`` None: the trainer holds out ``val_fraction`` of ``train``
    (stratified). ``classes``: one name per class index. ``data.augment: auto`` means
    random crops and horizontal flips, as for every dataset but the digit ones: a study on
    images whose class a flip changes sets ``augment: crop`` (or ``none``).
    """

    train: tuple[Tensor, Tensor] | Dataset[Any]
    classes: list[str]
    val: tuple[Tensor, Tensor] | Dataset[Any] | None = None


class DatasetPlugin(Protocol):
    """A dataset plugin: ``load`` answers the splits for ``config`` (its options in
    ``config.dataset_options``, checked and completed like a model plugin's)."""

    def load(self, config: DataConfig) -> PluginDataset: ...
