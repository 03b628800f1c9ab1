"""The real MNIST images as an ImageFolder tree, for the benchmarks that train on them.

bench/_common.default_mnist_dir() names the folder of MNIST's 10,000-image test split as
IDX gz files (the only split the benchmarks use). `export_mnist` writes its first images as
PNG files under ``<target>/train/<label>/`` and ``<target>/val/<label>/``: a tree that
sweepdoc reads as ``imagefolder:<name>`` (its own train/val split, no re-splitting) and
torchvision as two ``ImageFolder`` datasets. One exporter serves every benchmark (the
diagnoser's labeled set, the Optuna comparison).
"""

from __future__ import annotations

import gzip
from pathlib import Path

# The 10k split holds this many images; a tree cannot ask for more.
MNIST_10K_IMAGES = 10_000


def read_idx(path: Path) -> tuple[list[int], bytes]:
    """The shape and the raw bytes of one gzipped IDX file (uint8 payload)."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return shape, raw[4 + 4 * dims :]


def export_mnist(source: Path, target: Path, *, train: int, val: int) -> Path:
    """Write the first *train* images of *source* to ``target/train`` and the next *val* to
    ``target/val`` (one folder per digit, 28×28 grayscale PNG); return *target*.

    A finished tree is marked with a ``.complete`` file naming its counts, so a second call
    with the same counts costs nothing and a call with other counts rewrites it.
    """
    from PIL import Image

    if train < 1 or val < 1 or train + val > MNIST_10K_IMAGES:
        raise ValueError(
            f"train and val must be ≥ 1 and together ≤ {MNIST_10K_IMAGES}, got {train} + {val}"
        )
    done = target / ".complete"
    marker = f"train={train} val={val}\n"
    if done.is_file() and done.read_text() == marker:
        return target
    shape, pixels = read_idx(source / "t10k-images-idx3-ubyte.gz")
    _, labels = read_idx(source / "t10k-labels-idx1-ubyte.gz")
    rows, cols = shape[1], shape[2]
    side = rows * cols
    for part in ("train", "val"):
        # Other counts than a tree already there: start clean, or old images would stay.
        for old in (target / part).glob("*/*.png"):
            old.unlink()
    for index in range(train + val):
        part = "train" if index < train else "val"
        folder = target / part / str(labels[index])
        folder.mkdir(parents=True, exist_ok=True)
        chunk = pixels[index * side : (index + 1) * side]
        Image.frombytes("L", (cols, rows), chunk).save(folder / f"{index:05d}.png")
    done.write_text(marker)
    return target
