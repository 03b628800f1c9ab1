"""ImageFolder trees (one sub-folder per class) inside the data root.

A tree is first *listed* (paths and labels, nothing decoded) as :class:`FileImages`;
small trees are then decoded into memory at once, large ones are streamed from disk
(see ``trainer._stream``). Every path must resolve inside the data root
(``trainer._paths.resolve_inside``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trainer._errors import DatasetError
from trainer._paths import resolve_inside

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Images looked at to decide between 1-channel (all grayscale) and RGB.
MODE_SAMPLE = 64
_GRAY_MODES = ("L", "1", "I;16", "I")


@dataclass(frozen=True)
class FileImages:
    """A listed split: image files and their labels, decoded on demand."""

    paths: list[str]
    y: Tensor  # (N,) int64
    num_classes: int
    mode: str  # "L" (1 channel) or "RGB"
    size: tuple[int, int]  # (W, H) every image has, or is resized to
    resize: bool  # image_size was given: resize instead of refusing other sizes

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (1 if self.mode == "L" else 3, self.size[1], self.size[0])

    def take(self, index: np.ndarray) -> FileImages:
        idx = np.sort(index)
        return replace(self, paths=[self.paths[i] for i in idx], y=self.y[torch.from_numpy(idx)])

    def relabel(self, y: Tensor) -> FileImages:
        return replace(self, y=y)


def image_folder(root: Path, relative: str) -> Path:
    """The image folder *relative* under the data root *root* (``resolve_inside``), which
    must exist."""
    candidate = resolve_inside(root, relative)
    if not candidate.is_dir():
        raise DatasetError(f"imagefolder path {relative!r}: no folder there in the data root")
    return candidate


def _shown(path: str | Path, root: Path) -> str:
    """*path* as shown in an error: relative to *root*, never the server's absolute path."""
    try:
        return str(Path(path).relative_to(root)) or "."
    except ValueError:
        return Path(path).name


def class_names(tree: Path) -> list[str]:
    return sorted(p.name for p in tree.iterdir() if p.is_dir() and not p.name.startswith("."))


def list_tree(
    tree: Path,
    root: Path,
    *,
    image_size: int | None,
    classes: list[str] | None = None,
    like: FileImages | None = None,
) -> FileImages:
    """List an ImageFolder tree without decoding it.

    Every file must resolve inside *root* (a symlinked image or class folder pointing
    elsewhere is refused like a ``..`` path). The channel count comes from the first
    ``MODE_SAMPLE`` images (all grayscale → 1 channel, else RGB) and the size from the
    first image unless ``image_size`` is set; ``like`` makes a val tree follow its train
    tree's mode and size.
    """
    from PIL import Image
    from torchvision.datasets.folder import make_dataset

    shown = _shown(tree, root)
    classes = classes if classes is not None else class_names(tree)
    if len(classes) < 2:
        raise DatasetError(
            f"{shown!r} in the image folder: an image folder needs at least two class "
            f"sub-folders, found {classes}"
        )
    class_to_idx = {name: i for i, name in enumerate(classes)}
    try:
        samples = make_dataset(str(tree), class_to_idx, extensions=IMAGE_SUFFIXES)
    except FileNotFoundError as e:
        # torchvision's message quotes the absolute folder: say which class instead.
        raise DatasetError(f"{shown!r} in the image folder: {e}") from e
    root_resolved = root.resolve()
    for path_str, _ in samples:
        if root_resolved not in Path(path_str).resolve().parents:
            raise DatasetError(
                f"{_shown(path_str, root)!r} resolves outside the image folder (a symlink)"
            )
    paths = [path for path, _ in samples]
    y = torch.tensor([label for _, label in samples], dtype=torch.int64)
    if like is not None:
        return FileImages(paths, y, len(classes), like.mode, like.size, like.resize)
    modes, first_size = [], None
    for path in paths[:MODE_SAMPLE]:
        try:
            with Image.open(path) as image:
                modes.append(image.mode)
                first_size = first_size or image.size
        except (OSError, ValueError) as e:
            raise DatasetError(
                f"{_shown(path, root)!r} in the image folder: cannot decode the image: "
                f"{_without(e, path)}"
            ) from e
    assert first_size is not None  # make_dataset refuses empty trees
    mode = "L" if all(m in _GRAY_MODES for m in modes) else "RGB"
    size = (image_size, image_size) if image_size is not None else first_size
    return FileImages(paths, y, len(classes), mode, size, image_size is not None)


def _without(error: Exception, path: str) -> str:
    """*error*'s message without *path* (PIL quotes the absolute path it could not open)."""
    return str(error).replace(path, _class_and_name(path))


def _class_and_name(path: str) -> str:
    # Shown instead of the absolute path: the class folder and the file name find the image.
    return str(Path(*Path(path).parts[-2:]))


def read_image(path: str, *, mode: str, size: tuple[int, int], resize: bool) -> np.ndarray:
    """Decode one image as uint8 (H, W) or (H, W, 3) in the split's mode and size."""
    from PIL import Image

    shown = _class_and_name(path)
    try:
        with Image.open(path) as opened:
            image: Image.Image = opened
            if image.size != size:
                if not resize:
                    raise DatasetError(
                        f"{shown} is {image.size[0]}×{image.size[1]} but the first image is "
                        f"{size[0]}×{size[1]}; set image_size to resize every image"
                    )
                image = image.resize(size, Image.Resampling.BILINEAR)
            return np.array(image.convert(mode), dtype=np.uint8)  # writable copy
    except (OSError, ValueError) as e:  # PIL's UnidentifiedImageError is an OSError
        raise DatasetError(f"{shown}: cannot decode the image: {_without(e, path)}") from e


def to_chw(array: np.ndarray, mode: str) -> Tensor:
    """(…, H, W) grayscale or (…, H, W, 3) RGB uint8 → (…, C, H, W) uint8 tensor."""
    x = torch.from_numpy(array)
    return x.unsqueeze(-3) if mode == "L" else x.movedim(-1, -3)
