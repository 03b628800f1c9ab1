"""From raw images to normalised batches on the training device.

Order of operations (all seeded by ``DataConfig.split_seed``):
stratified train/val split (unless the dataset has its own val split) → stratified
training subset → label noise on the training labels → per-channel mean/std of the
training images only → normalise both splits.

Small datasets (everything but large image folders) are then held as tensors on the
training device for the whole run (:class:`PreparedData`); large image folders are
streamed from disk by DataLoader workers (``trainer._stream.StreamedData``). Both give
the training loop the same two iterators (``trainer._batches.BatchSource``), and augment
on the device in batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from trainer._batches import Batch, augment_batch, batch_bounds, channel_stats, val_bounds
from trainer._config import DataConfig
from trainer._errors import DatasetError
from trainer._imagefolder import FileImages
from trainer._sources import RawImages, load_raw
from trainer._stream import StreamedData


@dataclass(frozen=True)
class PreparedData:
    """Both splits, normalised, resident on the training device."""

    train_x: Tensor  # (N, C, H, W) float32, normalised
    train_y: Tensor  # (N,) int64
    val_x: Tensor  # (M, C, H, W)
    val_y: Tensor  # (M,)
    num_classes: int
    mean: list[float]  # per channel, training split only
    std: list[float]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return (int(c), int(h), int(w))

    @property
    def train_size(self) -> int:
        return len(self.train_y)

    @property
    def val_size(self) -> int:
        return len(self.val_y)

    def train_batches(
        self, batch: int, generator: torch.Generator, *, pad: int, flip: bool, channels_last: bool
    ) -> Iterator[Batch]:
        n = self.train_size
        perm = torch.randperm(n, device=self.train_x.device, generator=generator)
        xs = self.train_x[perm]  # (N, C, H, W), this epoch's order
        ys = self.train_y[perm]
        if pad or flip:
            # The whole epoch at once: one set of kernels instead of one per batch.
            xs = augment_batch(xs, pad=pad, flip=flip, generator=generator)
        if channels_last:
            xs = xs.contiguous(memory_format=torch.channels_last)
        for start, end in batch_bounds(n, batch):
            yield xs[start:end], ys[start:end]

    def val_batches(self, first: int, size: int) -> Iterator[Batch]:
        for start, end in val_bounds(self.val_size, first, size):
            yield self.val_x[start:end], self.val_y[start:end]

    def close(self) -> None:
        """Nothing to release: the tensors go with the object."""


Split = RawImages | FileImages


def prepare_data(
    config: DataConfig, device: torch.device, *, channels_last: bool = False
) -> PreparedData | StreamedData:
    """Load, split, subset, corrupt and normalise the configured dataset; in memory on
    *device* (a :class:`PreparedData`) unless it is a large image folder."""
    raw = load_raw(config)
    train, val = (
        _stratified_split(raw.train, config.val_fraction, config.split_seed)
        if raw.val is None
        else (raw.train, raw.val)
    )
    if config.train_subset is not None and config.train_subset < len(train.y):
        train = _stratified_subset(train, config.train_subset, config.split_seed)
    if config.label_noise > 0.0:
        train = _with_label_noise(train, config.label_noise, config.split_seed)
    if isinstance(train, FileImages) and isinstance(val, FileImages):
        return StreamedData(train, val, device, channels_last=channels_last)
    assert isinstance(train, RawImages) and isinstance(val, RawImages)
    return resident(train, val, device, channels_last=channels_last)


def resident(
    train: RawImages, val: RawImages, device: torch.device, *, channels_last: bool
) -> PreparedData:
    # The seed: subtract the per-channel mean, divide by the per-channel std, both taken
    # from the training images only (the val split must not leak into preprocessing).
    mean, std = channel_stats(train.x)

    def place(x: Tensor) -> Tensor:
        x = (x - mean[None, :, None, None]) / std[None, :, None, None]
        x = x.to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return PreparedData(
        train_x=place(train.x),
        train_y=train.y.to(device),
        val_x=place(val.x),
        val_y=val.y.to(device),
        num_classes=train.num_classes,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
    )


def _stratified_split(images: Split, val_fraction: float, seed: int) -> tuple[Split, Split]:
    train_idx, val_idx = _stratified_indices(
        images,
        seed,
        test_size=val_fraction,
        refusal=f"cannot split {len(images.y)} images into train/val with val_fraction="
        f"{val_fraction} stratified by class",
    )
    return images.take(train_idx), images.take(val_idx)


def _stratified_subset(images: Split, size: int, seed: int) -> Split:
    keep, _ = _stratified_indices(
        images,
        seed,
        train_size=size,
        refusal=f"train_subset={size}: cannot draw a class-stratified subset of "
        f"{len(images.y)} training images",
    )
    return images.take(keep)


def _stratified_indices(
    images: Split,
    seed: int,
    *,
    refusal: str,
    train_size: int | None = None,
    test_size: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of *images* cut in two with each class in proportion (scikit-learn's
    ``train_test_split``, seeded); a cut it cannot make (a class too small for it) raises a
    DatasetError that starts with *refusal*."""
    labels = images.y.numpy()
    try:
        first, second = train_test_split(
            np.arange(len(labels)),
            train_size=train_size,
            test_size=test_size,
            stratify=labels,
            random_state=seed,
        )
    except ValueError as e:
        raise DatasetError(f"{refusal}: {e}") from e
    return first, second


def _with_label_noise(images: Split, fraction: float, seed: int) -> Split:
    """Replace ``fraction`` of the labels by a different class, drawn uniformly."""
    rng = np.random.default_rng(seed + 1)  # independent of the split's stream
    labels = images.y.numpy().copy()
    count = round(fraction * len(labels))
    chosen = rng.choice(len(labels), size=count, replace=False)
    # Adding 1..K-1 modulo K gives a uniformly random *different* class.
    shift = rng.integers(1, images.num_classes, size=count)
    labels[chosen] = (labels[chosen] + shift) % images.num_classes
    return images.relabel(torch.from_numpy(labels))


