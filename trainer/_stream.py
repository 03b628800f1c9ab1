"""Streaming a large image folder from disk: DataLoader workers decode the files, the
training device normalises and augments each batch (the same kernels as the in-memory
path), so only a few batches are ever in memory."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from trainer._batches import Batch, augment_batch, batch_bounds, channel_stats, val_bounds
from trainer._errors import DatasetError
from trainer._imagefolder import FileImages, read_image, to_chw

# Training images decoded to estimate the per-channel mean/std of a streamed dataset.
STATS_SAMPLE = 2048
# Decoding processes per loader (train and val each have their own).
WORKERS = min(4, os.cpu_count() or 1)


class _Files(Dataset[tuple[Tensor, int]]):
    def __init__(self, files: FileImages):
        self.files = files

    def __len__(self) -> int:
        return len(self.files.paths)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        f = self.files
        array = read_image(f.paths[i], mode=f.mode, size=f.size, resize=f.resize)
        return to_chw(array, f.mode), int(f.y[i])  # (C, H, W) uint8


class _OrderedBatches(Sampler[list[int]]):
    """Yields the batches of ``bounds`` over ``order``, which is replaced every epoch
    (the loader, and its worker processes, live for the whole run)."""

    def __init__(self, bounds: list[tuple[int, int]], order: list[int]):
        self.bounds, self.order = bounds, order

    def __iter__(self) -> Iterator[list[int]]:
        for start, end in self.bounds:
            yield self.order[start:end]

    def __len__(self) -> int:
        return len(self.bounds)


class StreamedData:
    """A listed image folder, decoded batch by batch (``BatchSource``)."""

    def __init__(
        self, train: FileImages, val: FileImages, device: torch.device, *, channels_last: bool
    ):
        self.train, self.val = train, val
        self.device = device
        self.channels_last = channels_last
        self.num_classes = train.num_classes
        # Per-channel statistics from (a seeded sample of) the training images only.
        n = len(train.paths)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(n, size=min(n, STATS_SAMPLE), replace=False))
        images = _Files(train)
        x = torch.stack([images[int(i)][0] for i in sample]).to(torch.float32)  # (S,C,H,W)
        mean, std = channel_stats(x)
        self.mean = [float(v) for v in mean]
        self.std = [float(v) for v in std]
        self._mean = mean.to(device)[None, :, None, None]
        self._std = std.to(device)[None, :, None, None]
        self._train_sampler: _OrderedBatches | None = None
        self._train_loader: DataLoader[tuple[Tensor, int]] | None = None
        self._val_loaders: dict[tuple[int, int], DataLoader[tuple[Tensor, int]]] = {}

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.train.input_shape

    @property
    def train_size(self) -> int:
        return len(self.train.paths)

    @property
    def val_size(self) -> int:
        return len(self.val.paths)

    def _loader(
        self, files: FileImages, sampler: _OrderedBatches
    ) -> DataLoader[tuple[Tensor, int]]:
        return DataLoader(
            _Files(files),
            batch_sampler=sampler,
            num_workers=WORKERS,
            pin_memory=self.device.type == "cuda",
            persistent_workers=WORKERS > 0,
            # The workers' base seed is drawn from this private generator, not torch's
            # default one that dropout draws from: a resumed run (trainer._resume) builds
            # its loaders later in the run, and must not shift the dropout stream by it.
            generator=torch.Generator(),
        )

    def _to_device(self, xb: Tensor, yb: Tensor) -> Batch:
        xb = xb.to(self.device, non_blocking=True).to(torch.float32)
        xb = (xb - self._mean) / self._std  # (B, C, H, W), same arithmetic as in memory
        return xb, yb.to(self.device, non_blocking=True)

    def _batches(self, loader: DataLoader[tuple[Tensor, int]]) -> Iterator[tuple[Tensor, Tensor]]:
        try:
            yield from loader
        except DatasetError as e:
            # A worker's error arrives wrapped with its traceback; keep the message.
            raise DatasetError(str(e).strip().splitlines()[-1].split(": ", 1)[-1]) from None

    def train_batches(
        self, batch: int, generator: torch.Generator, *, pad: int, flip: bool, channels_last: bool
    ) -> Iterator[Batch]:
        n = self.train_size
        perm = torch.randperm(n, device=generator.device, generator=generator)
        if self._train_loader is None or self._train_sampler is None:
            self._train_sampler = _OrderedBatches(batch_bounds(n, batch), [])
            self._train_loader = self._loader(self.train, self._train_sampler)
        self._train_sampler.order = perm.tolist()
        for xb_raw, yb_raw in self._batches(self._train_loader):
            xb, yb = self._to_device(xb_raw, yb_raw)
            if pad or flip:
                xb = augment_batch(xb, pad=pad, flip=flip, generator=generator)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yield xb, yb

    def val_batches(self, first: int, size: int) -> Iterator[Batch]:
        key = (first, size)
        if key not in self._val_loaders:
            bounds = val_bounds(self.val_size, first, size)
            self._val_loaders[key] = self._loader(
                self.val, _OrderedBatches(bounds, list(range(self.val_size)))
            )
        for xb, yb in self._batches(self._val_loaders[key]):
            x, y = self._to_device(xb, yb)
            yield (x.contiguous(memory_format=torch.channels_last) if self.channels_last else x), y

    def close(self) -> None:
        """Stop the worker processes."""
        self._train_loader = None
        self._val_loaders.clear()
