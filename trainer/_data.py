"""From raw images to normalised tensors resident on the training device.

Order of operations (all seeded by ``DataConfig.split_seed``):
stratified train/val split (unless the dataset has its own val split) → stratified
training subset → label noise on the training labels → per-channel mean/std of the
training images only → normalise both splits → move to the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import train_test_split
from torch import Tensor

from trainer._config import DataConfig
from trainer._errors import DatasetError
from trainer._sources import RawImages, load_raw


@dataclass(frozen=True)
class PreparedData:
    """Both splits, normalised, on the training device."""

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


def prepare_data(
    config: DataConfig, device: torch.device, *, channels_last: bool = False
) -> PreparedData:
    """Load, split, subset, corrupt, normalise and place the configured dataset."""
    raw = load_raw(config)
    if raw.val is None:
        train, val = _stratified_split(raw.train, config.val_fraction, config.split_seed)
    else:
        train, val = raw.train, raw.val
    if config.train_subset is not None and config.train_subset < len(train.y):
        train = _stratified_subset(train, config.train_subset, config.split_seed)
    if config.label_noise > 0.0:
        train = _with_label_noise(train, config.label_noise, config.split_seed)

    # The seed: subtract the per-channel mean, divide by the per-channel std, both taken
    # from the training images only (the val split must not leak into preprocessing).
    mean = train.x.mean(dim=(0, 2, 3))  # (C,)
    std = train.x.std(dim=(0, 2, 3)).clamp_min(1e-6)  # (C,)

    def place(x: Tensor) -> Tensor:
        x = (x - mean[None, :, None, None]) / std[None, :, None, None]
        x = x.to(device)
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x

    return PreparedData(
        train_x=place(train.x),
        train_y=train.y.to(device),
        val_x=place(val.x),
        val_y=val.y.to(device),
        num_classes=raw.train.num_classes,
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
    )


def _take(images: RawImages, index: np.ndarray) -> RawImages:
    idx = torch.from_numpy(np.sort(index))
    return RawImages(images.x[idx], images.y[idx], images.num_classes)


def _stratified_split(
    images: RawImages, val_fraction: float, seed: int
) -> tuple[RawImages, RawImages]:
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
    return _take(images, train_idx), _take(images, val_idx)


def _stratified_subset(images: RawImages, size: int, seed: int) -> RawImages:
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
    return _take(images, keep)


def _with_label_noise(images: RawImages, fraction: float, seed: int) -> RawImages:
    """Replace ``fraction`` of the labels by a different class, drawn uniformly."""
    rng = np.random.default_rng(seed + 1)  # independent of the split's stream
    labels = images.y.numpy().copy()
    count = round(fraction * len(labels))
    chosen = rng.choice(len(labels), size=count, replace=False)
    # Adding 1..K-1 modulo K gives a uniformly random *different* class.
    shift = rng.integers(1, images.num_classes, size=count)
    labels[chosen] = (labels[chosen] + shift) % images.num_classes
    return RawImages(images.x, torch.from_numpy(labels), images.num_classes)


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
