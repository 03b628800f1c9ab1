"""A dataset plugin's splits, read into memory and checked against its contract.

The plugin's ``load(config)`` returns a :class:`trainer.PluginDataset`; this module turns
each split (tensors, or a map-style ``Dataset`` read item by item) into one float32
(N, C, H, W) tensor and one int64 (N,) label tensor, and refuses, naming the plugin,
anything the trainer could not train on: wrong shapes, labels outside the class list,
splits whose image shapes differ, a failure inside the plugin's own code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from trainer._config import DataConfig
from trainer._errors import DatasetError
from trainer._plugin_api import PluginDataset
from trainer._plugins import LoadedPlugin, PluginKind, load_plugin, plugin_name


@dataclass(frozen=True)
class PluginSplits:
    """A dataset plugin's splits in memory: x (N, C, H, W) float32, y (N,) int64."""

    train: tuple[Tensor, Tensor]
    val: tuple[Tensor, Tensor] | None
    classes: list[str]


def read_plugin_dataset(config: DataConfig) -> PluginSplits:
    """Load the dataset plugin *config.dataset* names, with *config.dataset_options*."""
    name = plugin_name(config.dataset)
    if name is None:
        raise ValueError(f"not a plugin dataset: {config.dataset!r}")
    plugin = load_plugin(PluginKind.DATASET, name)
    origin = plugin.entry.origin
    try:
        loaded = plugin.obj.load(config)
    except Exception as exc:  # third-party code: report it by the plugin's name
        raise DatasetError(
            f"dataset plugin {origin} failed to load: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(loaded, PluginDataset):
        raise DatasetError(
            f"dataset plugin {origin}: load() must return a trainer.PluginDataset, got "
            f"{type(loaded).__name__}"
        )
    classes = [str(c) for c in loaded.classes]
    if len(classes) < 2:
        raise DatasetError(f"dataset plugin {origin}: needs at least 2 classes, got {classes}")
    train = _split(plugin, "train", loaded.train, len(classes))
    val = None if loaded.val is None else _split(plugin, "val", loaded.val, len(classes))
    if val is not None and val[0].shape[1:] != train[0].shape[1:]:
        raise DatasetError(
            f"dataset plugin {origin}: val images are {tuple(val[0].shape[1:])}, train images "
            f"{tuple(train[0].shape[1:])}; both splits need one shape (C, H, W)"
        )
    return PluginSplits(train, val, classes)


def _split(plugin: LoadedPlugin, which: str, split: Any, num_classes: int) -> tuple[Tensor, Tensor]:
    origin = plugin.entry.origin
    if isinstance(split, tuple) and len(split) == 2:
        x, y = split
    elif isinstance(split, torch.utils.data.Dataset):
        x, y = _read_items(origin, which, split)
    else:
        raise DatasetError(
            f"dataset plugin {origin}: {which} must be an (images, labels) tuple of tensors or "
            f"a torch Dataset, got {type(split).__name__}"
        )
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DatasetError(f"dataset plugin {origin}: {which} images and labels must be tensors")
    if x.ndim != 4 or y.ndim != 1 or len(x) != len(y) or len(y) == 0:
        raise DatasetError(
            f"dataset plugin {origin}: {which} needs images (N, C, H, W) and labels (N,) with "
            f"N > 0, got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise DatasetError(
            f"dataset plugin {origin}: {which} labels must be integers, got {y.dtype}"
        )
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= num_classes:
        raise DatasetError(
            f"dataset plugin {origin}: {which} labels must lie in 0..{num_classes - 1} (one per "
            f"class name), got {low}..{high}"
        )
    # Copies on the CPU: the trainer moves them to the device after normalising.
    return x.detach().to("cpu", torch.float32).contiguous(), y.to("cpu", torch.int64)


def _read_items(origin: str, which: str, dataset: Any) -> tuple[Tensor, Tensor]:
    """Every ``(image, label)`` of a map-style Dataset, stacked (held in memory, as the
    built-in datasets are)."""
    try:
        size = len(dataset)
    except TypeError as exc:
        raise DatasetError(
            f"dataset plugin {origin}: the {which} Dataset needs a length (map-style)"
        ) from exc
    if size == 0:
        raise DatasetError(f"dataset plugin {origin}: the {which} Dataset is empty")
    images, labels = [], []
    for index in range(size):
        try:
            image, label = dataset[index]
            labels.append(int(label))
        except Exception as exc:  # third-party code: report it by the plugin's name
            raise DatasetError(
                f"dataset plugin {origin}: reading {which} item {index} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(image, Tensor) or image.ndim != 3:
            raise DatasetError(
                f"dataset plugin {origin}: {which} item {index} must be an image tensor "
                f"(C, H, W), got {getattr(image, 'shape', type(image).__name__)}"
            )
        images.append(image)
    if len({tuple(i.shape) for i in images}) > 1:
        raise DatasetError(f"dataset plugin {origin}: {which} images differ in shape")
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)  # (N, C, H, W), (N,)
