"""What both ways of holding a dataset share: the batch type and the protocol the training
loop iterates, how an epoch is cut into batches, the per-channel statistics, and the
augmentation done on the training device.

The in-memory path (``trainer._data.PreparedData``) and the streamed path
(``trainer._stream.StreamedData``) both build on these, so the two give the loop the same
batches and augment with the same kernels.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

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
    """(start, end) of each validation batch: a first batch of *first* images (the
    dead-ReLU probe looks at it), then batches of *size*; in order, nothing dropped."""
    first = min(first, n)
    edges = [0, *range(first, n, size), n] if n > first else [0, n]
    return list(itertools.pairwise(edges))


def channel_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """The seed's preprocessing statistics: per-channel mean and std (N, C, H, W) → (C,)."""
    return x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)).clamp_min(1e-6)


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
