"""Split, subset, label noise, normalisation and augmentation of the bundled digits."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from trainer import DataConfig, DatasetError
from trainer._batches import augment_batch, crop_padding
from trainer._data import prepare_data

CPU = torch.device("cpu")


def class_counts(y: torch.Tensor) -> np.ndarray:
    return np.bincount(y.numpy(), minlength=10)


def test_split_is_stratified_seeded_and_disjoint() -> None:
    data = prepare_data(DataConfig(val_fraction=0.2, split_seed=0), CPU)
    assert len(data.train_y) == 1437 and len(data.val_y) == 360
    all_counts = np.bincount(load_digits().target, minlength=10)
    # Each class keeps its share in val (stratified), ±1 image of rounding.
    assert np.all(np.abs(class_counts(data.val_y) - all_counts * 0.2) <= 1)
    again = prepare_data(DataConfig(val_fraction=0.2, split_seed=0), CPU)
    assert torch.equal(again.val_x, data.val_x)
    other = prepare_data(DataConfig(val_fraction=0.2, split_seed=1), CPU)
    assert not torch.equal(other.val_x, data.val_x)
    # No val image appears among the training images.
    train_rows = {tuple(row) for row in data.train_x.flatten(1).tolist()}
    overlap = sum(tuple(row) in train_rows for row in data.val_x.flatten(1).tolist())
    assert overlap <= 2  # digits has a couple of exact duplicate images


def test_a_val_split_too_small_for_every_class_is_refused_by_name() -> None:
    # 0.2% of 1,797 images is 4 validation images: not one per class of the 10.
    with pytest.raises(DatasetError, match=r"cannot split 1797 images .* val_fraction=0.002"):
        prepare_data(DataConfig(val_fraction=0.002), CPU)


def test_mean_and_std_come_from_the_training_split_only() -> None:
    data = prepare_data(DataConfig(), CPU)
    # After normalisation the training images have mean 0 and std 1 per channel ...
    assert abs(float(data.train_x.mean())) < 1e-4
    assert abs(float(data.train_x.std()) - 1.0) < 1e-3
    # ... the val images only approximately, because their statistics were not used.
    assert float(data.val_x.mean()) != pytest.approx(0.0, abs=1e-4)
    # Recorded in the raw pixel scale (digits are 0..16).
    assert 4.0 < data.mean[0] < 6.0 and 5.0 < data.std[0] < 7.0
    assert len(data.mean) == len(data.std) == 1


def test_train_subset_is_stratified_and_leaves_val_alone() -> None:
    full = prepare_data(DataConfig(), CPU)
    sub = prepare_data(DataConfig(train_subset=200), CPU)
    assert len(sub.train_y) == 200
    assert torch.equal(sub.val_y, full.val_y)
    assert class_counts(sub.train_y).min() >= 18  # ~20 per class
    with pytest.raises(DatasetError, match="train_subset=5"):
        prepare_data(DataConfig(train_subset=5), CPU)  # fewer images than classes


def test_label_noise_relabels_exactly_that_fraction_of_training_labels() -> None:
    clean = prepare_data(DataConfig(), CPU)
    noisy = prepare_data(DataConfig(label_noise=0.3), CPU)
    assert torch.equal(noisy.train_x, clean.train_x)
    changed = float((noisy.train_y != clean.train_y).float().mean())
    assert changed == pytest.approx(0.3, abs=0.001)  # always a *different* class
    assert torch.equal(noisy.val_y, clean.val_y)  # val labels stay clean


def test_random_crop_shifts_images_within_the_padding() -> None:
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) + 1
    g = torch.Generator().manual_seed(0)
    outs = [augment_batch(x, pad=1, flip=False, generator=g) for _ in range(20)]
    assert all(o.shape == x.shape for o in outs)
    assert any(not torch.equal(o, x) for o in outs)
    for out in outs:
        for i in range(2):
            # Every output is the input shifted by at most 1 px (zeros entering the border).
            shifts = [
                torch.equal(
                    out[i, 0, max(0, dy) : 8 + min(0, dy), max(0, dx) : 8 + min(0, dx)],
                    x[i, 0, max(0, -dy) : 8 + min(0, -dy), max(0, -dx) : 8 + min(0, -dx)],
                )
                for dy in (-1, 0, 1)
                for dx in (-1, 0, 1)
            ]
            assert any(shifts)


def test_flip_mirrors_about_half_of_the_images() -> None:
    x = torch.randn(400, 1, 4, 4)
    out = augment_batch(x, pad=0, flip=True, generator=torch.Generator().manual_seed(0))
    flipped = sum(torch.equal(out[i], x[i].flip(-1)) for i in range(400))
    unchanged = sum(torch.equal(out[i], x[i]) for i in range(400))
    assert flipped + unchanged == 400
    assert 150 < flipped < 250


def test_augment_auto_has_no_flip_for_digit_datasets() -> None:
    assert DataConfig(dataset="digits").resolved_augment == "crop"
    assert DataConfig(dataset="mnist").resolved_augment == "crop"
    assert DataConfig(dataset="cifar10").resolved_augment == "crop+flip"
    assert DataConfig(dataset="digits", augment="none").resolved_augment == "none"
    assert crop_padding(32) == 4 and crop_padding(8) == 1


def test_bad_data_config_names_the_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="dataset"):
        DataConfig(dataset="imagenet")
    with pytest.raises(ValidationError, match="val_fraction"):
        DataConfig(val_fraction=1.5)
    with pytest.raises(ValidationError, match="extra"):
        DataConfig(datset="digits")  # type: ignore[call-arg]
