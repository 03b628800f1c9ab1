"""The real MNIST images (and scikit-learn's digits) as ImageFolder trees, for the benchmarks
that train on them.

bench/_common.default_mnist_dir() names the folder of MNIST's 10,000-image test split as
IDX gz files (the only split the benchmarks use). `export_mnist` writes its first images as
PNG files under ``<target>/train/<label>/`` and ``<target>/val/<label>/``: a tree that
sweepdoc reads as ``imagefolder:<name>`` (its own train/val split, no re-splitting) and
torchvision as two ``ImageFolder`` datasets. One exporter serves every benchmark (the
diagnoser's labeled set, the Optuna comparison). `write_tree` is the writer underneath: the
diagnoser's derived tasks (class subsets, rotated digits, noisy labels) use it too, fed by
`mnist_images` and `digits_images`.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# The 10k split holds this many images; a tree cannot ask for more.
MNIST_10K_IMAGES = 10_000

# One labeled grayscale image: (class folder name, (H, W) uint8 pixels).
Item = tuple[str, np.ndarray]


def read_idx(path: Path) -> tuple[list[int], bytes]:
    """The shape and the raw bytes of one gzipped IDX file (uint8 payload)."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return shape, raw[4 + 4 * dims :]


def mnist_images(source: Path) -> tuple[np.ndarray, np.ndarray]:
    """All 10,000 images of *source* as (N, 28, 28) uint8 and their (N,) digit labels."""
    shape, pixels = read_idx(source / "t10k-images-idx3-ubyte.gz")
    _, labels = read_idx(source / "t10k-labels-idx1-ubyte.gz")
    images = np.frombuffer(pixels, dtype=np.uint8).reshape(shape[0], shape[1], shape[2])
    return images, np.frombuffer(labels, dtype=np.uint8).astype(np.int64)


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 8×8 digits as (N, 8, 8) uint8 (0..16 stretched to 0..255) and
    their (N,) labels: the same images the trainer's built-in ``digits`` dataset reads."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0))
    return pixels.astype(np.uint8), np.asarray(bunch.target, dtype=np.int64)


def write_tree(target: Path, *, train: Sequence[Item], val: Sequence[Item], marker: str) -> Path:
    """Write *train* and *val* as grayscale PNGs under ``target/{train,val}/<class>/``.

    A finished tree is marked with a ``.complete`` file holding *marker* (a description of
    what it holds), so a second call with the same marker costs nothing and a call with
    another marker rewrites it from scratch (old images would otherwise stay).
    """
    from PIL import Image

    done = target / ".complete"
    marker = marker.rstrip("\n") + "\n"
    if done.is_file() and done.read_text() == marker:
        return target
    done.unlink(missing_ok=True)
    for part in ("train", "val"):
        for old in (target / part).glob("*/*.png"):
            old.unlink()
    for part, items in (("train", train), ("val", val)):
        for index, (label, pixels) in enumerate(items):
            folder = target / part / label
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.ascontiguousarray(pixels)).save(  # (H, W) uint8 → "L"
                folder / f"{index:05d}.png"
            )
    done.write_text(marker)
    return target


def export_mnist(source: Path, target: Path, *, train: int, val: int) -> Path:
    """Write the first *train* images of *source* to ``target/train`` and the next *val* to
    ``target/val`` (one folder per digit, 28×28 grayscale PNG); return *target*.

    A second call with the same counts costs nothing; other counts rewrite the tree.
    """
    if train < 1 or val < 1 or train + val > MNIST_10K_IMAGES:
        raise ValueError(
            f"train and val must be ≥ 1 and together ≤ {MNIST_10K_IMAGES}, got {train} + {val}"
        )
    images, labels = mnist_images(source)
    items = [(str(label), image) for image, label in zip(images, labels, strict=True)]
    return write_tree(
        target,
        train=items[:train],
        val=items[train : train + val],
        marker=f"train={train} val={val}",
    )
