"""Read a dataset from disk (or scikit-learn) into in-memory tensors.

Each loader returns :class:`RawImages`: ``x`` as (N, C, H, W) float32 in the dataset's
native pixel scale (0..16 for digits, 0..255 for the rest) and ``y`` as int64 labels.
Only training splits are read: a search never touches a test split.
"""

from __future__ import annotations

import gzip
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from trainer._config import IMAGEFOLDER_PREFIX, DataConfig
from trainer._errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


@dataclass(frozen=True)
class RawImages:
    """Images and labels of one split, before normalisation."""

    x: Tensor  # (N, C, H, W) float32, native pixel scale
    y: Tensor  # (N,) int64
    num_classes: int


@dataclass(frozen=True)
class RawDataset:
    """The training split, plus the dataset's own validation split when it has one."""

    train: RawImages
    val: RawImages | None


def load_raw(config: DataConfig) -> RawDataset:
    """Load the configured dataset's training split (and validation split, if it has one)."""
    if config.dataset == "digits":
        return RawDataset(_load_digits(), None)
    data_dir = _require_data_dir(config)
    if config.dataset in ("mnist", "fashion-mnist"):
        return RawDataset(_load_mnist_like(config.dataset, data_dir, config.download), None)
    if config.dataset in ("cifar10", "cifar100"):
        return RawDataset(_load_cifar(config.dataset, data_dir, config.download), None)
    relative = config.dataset[len(IMAGEFOLDER_PREFIX) :]
    return _load_imagefolder(resolve_inside(data_dir, relative), config.image_size)


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
            with gzip.open(gz, "rb") as src, open(raw / stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
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
        raise DatasetError(f"{name}: cannot read the IDX files in {raw}: {e}") from e
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
    except (RuntimeError, OSError, KeyError, ValueError, EOFError) as e:
        raise DatasetError(f"{name}: cannot read the batch files in {folder}: {e}") from e
    x = torch.from_numpy(np.ascontiguousarray(ds.data)).permute(0, 3, 1, 2)  # (N, 3, 32, 32)
    y = torch.as_tensor(ds.targets, dtype=torch.int64)
    return RawImages(x.to(torch.float32).contiguous(), y, 100 if name == "cifar100" else 10)


# --- image folders -------------------------------------------------------------------------


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve *relative* under *root*, refusing anything that ends up outside it.

    ``..`` segments, absolute paths elsewhere and symlinks pointing out of the root are
    all caught by comparing fully resolved paths (symlinks followed).
    """
    root_resolved = root.expanduser().resolve()
    candidate = (root_resolved / relative.strip()).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise DatasetError(
            f"imagefolder path {relative!r} resolves to {candidate}, which is outside the "
            f"data root {root_resolved}; image folders must live inside the data root"
        )
    if not candidate.is_dir():
        raise DatasetError(f"imagefolder path {relative!r}: no folder at {candidate}")
    return candidate


def _load_imagefolder(folder: Path, image_size: int | None) -> RawDataset:
    train_dir, val_dir = folder / "train", folder / "val"
    if train_dir.is_dir() and val_dir.is_dir():
        train = _read_tree(train_dir, folder, image_size, None)
        classes = _class_names(train_dir)
        val = _read_tree(val_dir, folder, image_size, classes)
        if val.x.shape[1:] != train.x.shape[1:]:
            raise DatasetError(
                f"{folder}: val images are {tuple(val.x.shape[1:])} but train images are "
                f"{tuple(train.x.shape[1:])} (C, H, W); set image_size or make them match"
            )
        return RawDataset(train, val)
    return RawDataset(_read_tree(folder, folder, image_size, None), None)


def _class_names(tree: Path) -> list[str]:
    return sorted(p.name for p in tree.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_tree(
    tree: Path, root: Path, image_size: int | None, classes: list[str] | None
) -> RawImages:
    """Read an ImageFolder tree (one sub-folder per class) into tensors.

    Every file must resolve inside *root* (a symlinked image pointing elsewhere is
    refused like a ``..`` path). Grayscale trees stay 1-channel, anything else is RGB.
    """
    from PIL import Image
    from torchvision.datasets.folder import make_dataset

    classes = classes if classes is not None else _class_names(tree)
    if len(classes) < 2:
        raise DatasetError(
            f"{tree}: an image folder needs at least two class sub-folders, found {classes}"
        )
    class_to_idx = {name: i for i, name in enumerate(classes)}
    try:
        samples = make_dataset(str(tree), class_to_idx, extensions=IMAGE_SUFFIXES)
    except FileNotFoundError as e:
        raise DatasetError(f"{tree}: {e}") from e
    root_resolved = root.resolve()
    images: list[Image.Image] = []
    for path_str, _ in samples:
        path = Path(path_str)
        if root_resolved not in path.resolve().parents:
            raise DatasetError(f"{path} resolves outside the image folder {root_resolved}")
        with Image.open(path) as opened:
            images.append(opened.copy())
    grayscale = all(im.mode in ("L", "1", "I;16", "I") for im in images)
    mode = "L" if grayscale else "RGB"
    size = (image_size, image_size) if image_size is not None else images[0].size
    arrays = []
    for (path_str, _), original in zip(samples, images, strict=True):
        image: Image.Image = original
        if image.size != size:
            if image_size is None:
                raise DatasetError(
                    f"{path_str} is {image.size[0]}×{image.size[1]} but the first image is "
                    f"{size[0]}×{size[1]}; set image_size to resize every image"
                )
            image = image.resize(size, Image.Resampling.BILINEAR)
        arrays.append(np.asarray(image.convert(mode), dtype=np.uint8))
    stacked = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    x = torch.from_numpy(stacked)
    x = x.unsqueeze(1) if grayscale else x.permute(0, 3, 1, 2)  # (N, C, H, W)
    y = torch.tensor([label for _, label in samples], dtype=torch.int64)
    return RawImages(x.to(torch.float32).contiguous(), y, len(classes))
