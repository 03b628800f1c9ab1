"""From raw images to normalised batches on the training device.

Order of operations (all seeded by ``DataConfig.split_seed``):
stratified train/val split (unless the dataset has its own val split) → stratified
training subset → label noise on the training labels → per-channel mean/std of the
training images only → normalise both splits.

Small datasets (everything but large image folders) are then held as tensors on the
training device for the whole run (:class:`PreparedData`); large image folders are
streamed from disk by DataLoader workers (``trainer._stream.StreamedData``). Both give
the training loop the same two iterators, and augment on the device in batches.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from trainer._config import DataConfig
from trainer._errors import DatasetError
from trainer._imagefolder import FileImages
from trainer._sources import RawImages, load_raw

if TYPE_CHECKING:
    from trainer._stream import StreamedData

Batch = tuple[Tensor, Tensor]  # (B, C, H, W) float32 normalised, (B,) int64


class BatchSource(Protocol):
    """What the training loop needs from a dataset."""

    @property
    def num_classes(self) -> int: ...
    @property
    def mean(self) -> list[float]:
        """Per channel, training split only, in the native pixel scale."""
        ...

    @property
    def std(self) -> list[float]: ...
    @property
    def input_shape(self) -> tuple[int, int, int]: ...
    @property
    def train_size(self) -> int: ...
    @property
    def val_size(self) -> int: ...

    def train_batches(
        self, batch: int, generator: torch.Generator, *, pad: int, flip: bool, channels_last: bool
    ) -> Iterator[Batch]:
        """One epoch of shuffled, augmented training batches (see :func:`batch_bounds`)."""
        ...

    def val_batches(self, first: int, size: int) -> Iterator[Batch]:
        """The val split in order: a first batch of ``first`` images, then ``size`` each."""
        ...

    def close(self) -> None: ...


def batch_bounds(n: int, batch: int) -> list[tuple[int, int]]:
    """(start, end) of each training batch of an epoch. A last batch of one image breaks
    batch norm's statistics, so it is folded into the batch before it."""
    batch = min(batch, n)
    starts = list(range(0, n, batch))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, [*starts[1:], n], strict=True))


def val_bounds(n: int, first: int, size: int) -> list[tuple[int, int]]:
    first = min(first, n)
    edges = [0, *range(first, n, size), n] if n > first else [0, n]
    return list(itertools.pairwise(edges))


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
        from trainer._stream import StreamedData

        return StreamedData(train, val, device, channels_last=channels_last)
    assert isinstance(train, RawImages) and isinstance(val, RawImages)
    return resident(train, val, device, channels_last=channels_last)


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """The seed's preprocessing statistics: per-channel mean and std (N, C, H, W) → (C,)."""
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-6)


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
    labels = images.y.numpy()
    try:
        train_idx, val_idx = train_test_split(
            np.arange(len(labels)), test_size=val_fraction, stratify=labels, random_state=seed
        )
    except ValueError as e:
        raise DatasetError(
            f"cannot split {len(labels)} images into train/val with val_fraction="
            f"{val_fraction} stratified by class: {e}"
        ) from e
    return images.take(train_idx), images.take(val_idx)


def _stratified_subset(images: Split, size: int, seed: int) -> Split:
    labels = images.y.numpy()
    try:
        keep, _ = train_test_split(
            np.arange(len(labels)), train_size=size, stratify=labels, random_state=seed
        )
    except ValueError as e:
        raise DatasetError(
            f"train_subset={size}: cannot draw a class-stratified subset of {len(labels)} "
            f"training images: {e}"
        ) from e
    return images.take(keep)


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


def augment_batch(x: Tensor, *, pad: int, flip: bool, generator: torch.Generator | None) -> Tensor:
    """Random crop with zero padding (zero = the channel mean after normalisation) and an
    optional horizontal flip, for a whole batch at once on its own device.

    x: (N, C, H, W). Each image is shifted by an independent offset in [-pad, pad].
    """
    n, c, h, w = x.shape
    device = x.device
    if pad > 0:
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))  # (N, C, H+2p, W+2p)
        dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        rows = (dy[:, None] + torch.arange(h, device=device))[:, None, :, None]  # (N,1,H,1)
        cols = (dx[:, None] + torch.arange(w, device=device))[:, None, None, :]  # (N,1,1,W)
        batch = torch.arange(n, device=device)[:, None, None, None]
        chan = torch.arange(c, device=device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]  # (N, C, H, W)
    if flip:
        mask = torch.rand(n, device=device, generator=generator) < 0.5
        x = torch.where(mask[:, None, None, None], x.flip(-1), x)
    return x


def crop_padding(image_size: int) -> int:
    """Padding of the random crop: 4 px on 32 px CIFAR (the usual recipe), scaled with the
    image size, at least 1 px."""
    return max(1, round(image_size / 8))
