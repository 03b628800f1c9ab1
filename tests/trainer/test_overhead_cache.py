"""The per-process cache of decoded datasets (issue 15's overhead cuts): a worker decodes a
dataset once, and no trial can change what the next one gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import DataConfig
from trainer._sources import RawImages, clear_cache, load_raw


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_cache()


def _images(split: object) -> RawImages:
    assert isinstance(split, RawImages)
    return split


def test_a_trial_that_changes_its_tensors_in_place_leaves_the_next_trials_data_alone() -> None:
    config = DataConfig(dataset="digits")
    first = _images(load_raw(config).train)
    pristine_x, pristine_y = first.x.clone(), first.y.clone()

    first.x.mul_(0.0).add_(7.0)  # what a careless transform could do
    first.y.zero_()
    second = _images(load_raw(config).train)

    assert torch.equal(second.x, pristine_x) and torch.equal(second.y, pristine_y)
    assert second.x.data_ptr() != first.x.data_ptr()


def _write_folder(root: Path, value: int) -> None:
    for label in ("a", "b"):
        folder = root / "shapes" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(3):
            pixels = np.full((4, 4), value + i, dtype=np.uint8)
            Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")


def test_a_dataset_replaced_on_disk_is_read_again(tmp_path: Path) -> None:
    """The cache key holds the dataset folder's modification time: a folder written anew
    (what replacing a dataset does) is decoded again, not served from memory."""
    _write_folder(tmp_path, 10)
    config = DataConfig(dataset="imagefolder:shapes", data_dir=tmp_path)
    before = _images(load_raw(config).train)
    assert float(before.x.min()) == 10.0

    old = tmp_path / "shapes"
    old.rename(tmp_path / "shapes-old")
    _write_folder(tmp_path, 100)
    after = _images(load_raw(config).train)

    assert float(after.x.min()) == 100.0
