"""Read a dataset from disk (or scikit-learn) into in-memory tensors.

Each loader returns :class:`RawImages`: ``x`` as (N, C, H, W) float32 in the dataset's
native pixel scale (0..16 for digits, 0..255 for the rest) and ``y`` as int64 labels
(large image folders come back listed, as :class:`FileImages`, to be streamed).
Only training splits are read: a search never touches a test split.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainer._config import IMAGEFOLDER_PREFIX, DataConfig
from trainer._errors import DatasetError
from trainer._imagefolder import (
    FileImages,
    class_names,
    image_folder,
    list_tree,
    read_image,
    to_chw,
)
from trainer._plugin_data import read_plugin_dataset
from trainer._plugins import plugin_name


@dataclass(frozen=True)
class RawImages:
    """Images and labels of one split, in memory, before normalisation."""

    x: Tensor  # (N, C, H, W) float32, native pixel scale
    y: Tensor  # (N,) int64
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x.shape[1:]
        return (int(c), int(h), int(w))

    def take(self, index: np.ndarray) -> RawImages:
        idx = torch.from_numpy(np.sort(index))
        return RawImages(self.x[idx], self.y[idx], self.num_classes)

    def relabel(self, y: Tensor) -> RawImages:
        return RawImages(self.x, y, self.num_classes)


@dataclass(frozen=True)
class RawDataset:
    """The training split, plus the dataset's own validation split when it has one.
    Large image folders come as listed files (streamed), everything else in memory."""

    train: RawImages | FileImages
    val: RawImages | FileImages | None


# Decoded datasets kept per process: a worker trains many trials on the same data, and
# decoding it again (sklearn's digits, MNIST's IDX files, an image folder's PNGs) was most
# of a small trial's fixed cost. Two entries: a worker alternates between few datasets, and
# CIFAR-size sets weigh hundreds of MB each.
_CACHE_ENTRIES = 2
_cache: OrderedDict[tuple[Any, ...], RawDataset] = OrderedDict()
_cache_lock = threading.Lock()


def load_raw(config: DataConfig) -> RawDataset:
    """Load the configured dataset's training split (and validation split, if it has one).

    Served from a small per-process cache keyed by what the loading reads (the dataset,
    its root and that root's modification time, the image-folder options), as copies: a
    trial that changed a tensor in place could not leak the change into the next one."""
    if plugin_name(config.dataset) is not None:
        # Never cached: a plugin's data comes from wherever its code reads it, so no key
        # here could tell when it changed.
        return _load_plugin(config)
    key = _cache_key(config)
    with _cache_lock:
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
    if cached is None:
        cached = _read_raw(config)
        with _cache_lock:
            _cache[key] = cached
            while len(_cache) > _CACHE_ENTRIES:
                _cache.popitem(last=False)
    return RawDataset(_copy(cached.train), _copy(cached.val) if cached.val is not None else None)


def _cache_key(config: DataConfig) -> tuple[Any, ...]:
    root = None if config.data_dir is None else Path(config.data_dir) / _dataset_folder(config)
    if root is not None and config.dataset.startswith(IMAGEFOLDER_PREFIX):
        # Every file's name, size and modification time: a folder's own time changes only
        # when its direct entries do, so an image added to (or replaced in) a class folder
        # would otherwise be served stale. Stat-ing is cheap beside decoding the images.
        stamp: Any = _tree_stamp(root)
    else:
        try:
            stamp = root.stat().st_mtime_ns if root is not None else None
        except OSError:
            stamp = None  # missing: the read below raises the dataset's own clear error
    return (config.dataset, config.data_dir, stamp, config.image_size, config.storage)


def _tree_stamp(root: Path) -> int:
    """A hash of every file's relative path, size and modification time under *root*."""
    entries = []
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            try:
                info = os.stat(path)
            except OSError:
                continue
            entries.append((os.path.relpath(path, root), info.st_size, info.st_mtime_ns))
    return hash(tuple(sorted(entries)))


def _dataset_folder(config: DataConfig) -> str:
    if config.dataset.startswith(IMAGEFOLDER_PREFIX):
        return config.dataset[len(IMAGEFOLDER_PREFIX) :]
    return ""  # torchvision datasets: their folder under the root; the root stands for it


def _copy(split: RawImages | FileImages) -> RawImages | FileImages:
    if isinstance(split, RawImages):
        return RawImages(split.x.clone(), split.y.clone(), split.num_classes)
    return replace(split, paths=list(split.paths), y=split.y.clone())


def clear_cache() -> None:
    """Forget the decoded datasets (tests; a worker never needs to)."""
    with _cache_lock:
        _cache.clear()


def _read_raw(config: DataConfig) -> RawDataset:
    if config.dataset == "digits":
        return RawDataset(_load_digits(), None)
    data_dir = _require_data_dir(config)
    if config.dataset in ("mnist", "fashion-mnist"):
        return RawDataset(_load_mnist_like(config.dataset, data_dir, config.download), None)
    if config.dataset in ("cifar10", "cifar100"):
        return RawDataset(_load_cifar(config.dataset, data_dir, config.download), None)
    relative = config.dataset[len(IMAGEFOLDER_PREFIX) :]
    return _load_imagefolder(image_folder(data_dir, relative), config)


def _load_plugin(config: DataConfig) -> RawDataset:
    """A dataset plugin's splits (in memory; val None: split off by the trainer)."""
    splits = read_plugin_dataset(config)
    classes = len(splits.classes)
    val = None if splits.val is None else RawImages(*splits.val, classes)
    return RawDataset(RawImages(*splits.train, classes), val)


def _require_data_dir(config: DataConfig) -> Path:
    if config.data_dir is None:
        raise DatasetError(
            f"dataset {config.dataset!r} needs a data root: set data_dir "
            "(the service reads it from SWEEPDOC_DATA_DIR)"
        )
    return Path(config.data_dir)


def _load_digits() -> RawImages:
    # scikit-learn ships the 1,797 8×8 digits inside the package: no download, ever.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32)).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))
    return RawImages(x, y, 10)


# --- torchvision datasets ------------------------------------------------------------------

_MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _load_mnist_like(name: str, root: Path, download: bool) -> RawImages:
    from torchvision import datasets

    cls = datasets.MNIST if name == "mnist" else datasets.FashionMNIST
    raw = root / cls.__name__ / "raw"
    # torchvision checks for the *decompressed* files; users often copy only the .gz
    # files it downloads, so decompress those in place (what torchvision's own download does).
    for stem in _MNIST_FILES:
        gz = raw / f"{stem}.gz"
        if not (raw / stem).is_file() and gz.is_file():
            try:
                with gzip.open(gz, "rb") as src, open(raw / stem, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except OSError as e:
                (raw / stem).unlink(missing_ok=True)
                raise DatasetError(
                    f"{name}: cannot decompress {gz} next to itself ({e}); decompress it "
                    f"into {raw} yourself"
                ) from e
    missing = [stem for stem in _MNIST_FILES if not (raw / stem).is_file()]
    if missing and not download:
        raise DatasetError(
            f"{name}: missing {', '.join(missing)} (or the same names with .gz) in {raw}; "
            "torchvision's layout needs all four IDX files; copy them there or enable downloading "
            "(DataConfig.download, `sweepdoc train --download`)"
        )
    try:
        ds = cls(str(root), train=True, download=download)
    except (RuntimeError, OSError) as e:
        action = "could not download into" if missing else "cannot read the IDX files in"
        raise DatasetError(f"{name}: {action} {raw}: {e}") from e
    x = ds.data.to(torch.float32).unsqueeze(1)  # (N, 1, 28, 28)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return RawImages(x, y, 10)


def _cifar_class(name: str) -> Any:
    from torchvision import datasets

    base = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100

    class PresenceCheckedCIFAR(base):  # type: ignore[valid-type,misc]
        """torchvision's CIFAR with a presence check instead of md5 sums.

        The md5 check refuses every re-packed or trimmed batch file (and the tiny ones the
        tests write); the pickles are still parsed by torchvision's own code, and a broken
        file fails there with a clear error.
        """

        def _check_integrity(self) -> bool:
            return all(
                (Path(self.root) / self.base_folder / filename).is_file()
                for filename, _ in self.train_list + self.test_list
            )

        def _load_meta(self) -> None:
            # Class names are not needed (labels are already indices); skipping the meta
            # file's md5 keeps re-packed datasets loadable.
            self.classes: list[str] = []
            self.class_to_idx: dict[str, int] = {}

    return PresenceCheckedCIFAR


def _load_cifar(name: str, root: Path, download: bool) -> RawImages:
    cls = _cifar_class(name)
    folder = root / cls.base_folder
    expected = [f for f, _ in cls.train_list + cls.test_list]
    missing = [f for f in expected if not (folder / f).is_file()]
    if missing and not download:
        raise DatasetError(
            f"{name}: missing {', '.join(missing)} in {folder}; extract {cls.filename} "
            f"into {root} (it creates {cls.base_folder}/) or enable downloading "
            "(DataConfig.download, `sweepdoc train --download`)"
        )
    try:
        ds = cls(str(root), train=True, download=download)
    except (RuntimeError, OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError) as e:
        action = "could not download into" if missing else "cannot read the batch files in"
        raise DatasetError(f"{name}: {action} {folder}: {e}") from e
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return RawImages(x.to(torch.float32).contiguous(), y, 100 if name == "cifar100" else 10)


# --- image folders -------------------------------------------------------------------------

# Above this many bytes of float32 pixels (train + val), an image folder is streamed from
# disk instead of being held in memory (CIFAR-100 in memory is 0.6 GB).
RESIDENT_LIMIT_BYTES = 2 * 1024**3


def _load_imagefolder(folder: Path, config: DataConfig) -> RawDataset:
    train_dir, val_dir = folder / "train", folder / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train = list_tree(train_dir, folder, image_size=config.image_size)
        val: FileImages | None = list_tree(
            val_dir,
            folder,
            image_size=config.image_size,
            classes=class_names(train_dir),
            like=train,
        )
    else:
        train, val = list_tree(folder, folder, image_size=config.image_size), None
    c, h, w = train.input_shape
    images = len(train.paths) + (len(val.paths) if val is not None else 0)
    resident = config.storage == "memory" or (
        config.storage == "auto" and images * c * h * w * 4 <= RESIDENT_LIMIT_BYTES
    )
    if not resident:
        return RawDataset(train, val)
    return RawDataset(decode_all(train), decode_all(val) if val is not None else None)


def decode_all(files: FileImages) -> RawImages:
    """Decode every image of a listed split into one float32 (N, C, H, W) tensor."""
    arrays = [
        read_image(path, mode=files.mode, size=files.size, resize=files.resize)
        for path in files.paths
    ]
    x = to_chw(np.stack(arrays), files.mode)  # (N, C, H, W) uint8
    return RawImages(x.to(torch.float32).contiguous(), files.y, files.num_classes)
