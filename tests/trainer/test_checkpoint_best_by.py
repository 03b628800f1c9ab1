"""The best checkpoint follows the objective (``train(best_by=...)``), carries the class
names (format 2), still loads from a format-1 file, and a loaded checkpoint scores exactly
what it scored when it was saved (``evaluate_checkpoint``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tests.trainer.configs import small_digits_config
from trainer import (
    DataConfig,
    History,
    TrainerError,
    checkpoint_epoch,
    evaluate_checkpoint,
    load_checkpoint,
    train,
)
from trainer._checkpoint import FORMAT_VERSION, BestBy, dataset_class_names


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


# lr 0.5 on digits: the val loss bottoms out before the val accuracy peaks (measured: loss
# lowest at epoch 5, 0.929; accuracy highest at epoch 6, 0.692), so the two rules differ.
def _run(tmp_path: Path, best_by: BestBy) -> tuple[History, Path]:
    path = tmp_path / f"{best_by}.pt"
    history = train(
        small_digits_config(lr=0.5, epochs=6, seed=3), checkpoint_path=path, best_by=best_by
    )
    return history, path


@pytest.mark.parametrize("best_by", ["val_acc", "val_loss"])
def test_the_checkpoint_holds_the_best_epoch_by_the_rule_asked(
    tmp_path: Path, best_by: BestBy
) -> None:
    history, path = _run(tmp_path, best_by)
    values = [getattr(r, best_by) for r in history.records if math.isfinite(r.val_loss)]
    best = max(values) if best_by == "val_acc" else min(values)
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == values.index(best) + 1 == checkpoint_epoch(path)
    assert ckpt.metric[best_by] == best


def test_val_loss_and_val_acc_pick_different_epochs_on_this_run(tmp_path: Path) -> None:
    # Guards the test above: were both rules to pick one epoch, it could not tell them apart.
    _, by_acc = _run(tmp_path, "val_acc")
    _, by_loss = _run(tmp_path, "val_loss")
    assert load_checkpoint(by_acc).epoch != load_checkpoint(by_loss).epoch


def test_a_loaded_checkpoint_scores_exactly_what_it_scored_when_saved(tmp_path: Path) -> None:
    history, path = _run(tmp_path, "val_acc")
    ckpt = load_checkpoint(path)
    scored = evaluate_checkpoint(ckpt, device="cpu")
    assert scored.val_acc == ckpt.metric["val_acc"] == history.best_val_acc
    assert scored.val_loss == ckpt.metric["val_loss"]
    assert scored.val_size == history.data.val_size


def test_evaluating_on_images_the_network_does_not_take_is_refused(tmp_path: Path) -> None:
    _, path = _run(tmp_path, "val_acc")
    # A network for 3-channel images, scored on the 1-channel digits.
    raw = torch.load(path, weights_only=True) | {"input_shape": [3, 8, 8]}
    torch.save(raw, tmp_path / "rgb.pt")
    with pytest.raises(TrainerError, match=r"takes \(3, 8, 8\) images .* has \(1, 8, 8\)"):
        evaluate_checkpoint(tmp_path / "rgb.pt", device="cpu")


def test_the_checkpoint_names_its_classes_and_a_format_1_file_still_loads(
    tmp_path: Path,
) -> None:
    _, path = _run(tmp_path, "val_acc")
    assert load_checkpoint(path).class_names == [str(d) for d in range(10)]
    raw = torch.load(path, weights_only=True)
    assert raw["format_version"] == FORMAT_VERSION == 2
    old = {k: v for k, v in raw.items() if k != "class_names"} | {"format_version": 1}
    torch.save(old, tmp_path / "old.pt")
    loaded = load_checkpoint(tmp_path / "old.pt")
    assert loaded.class_names is None and loaded.epoch == raw["epoch"]
    assert evaluate_checkpoint(loaded, device="cpu").val_acc == raw["metric"]["val_acc"]


def test_a_checkpoint_from_a_newer_sweepdoc_is_refused_with_the_reason(tmp_path: Path) -> None:
    _, path = _run(tmp_path, "val_acc")
    raw = torch.load(path, weights_only=True) | {"format_version": FORMAT_VERSION + 1}
    torch.save(raw, tmp_path / "new.pt")
    with pytest.raises(TrainerError, match="newer than this sweepdoc reads"):
        load_checkpoint(tmp_path / "new.pt")


def test_class_names_of_an_image_folder_are_its_sorted_sub_folders(tmp_path: Path) -> None:
    for name in ("dog", "cat", ".hidden"):
        (tmp_path / "pets" / "train" / name).mkdir(parents=True)
    data = DataConfig(dataset="imagefolder:pets", data_dir=tmp_path)
    assert dataset_class_names(data, 2) == ["cat", "dog"]
    # Names that cannot be right (another class count) give way to the indices.
    assert dataset_class_names(data, 3) == ["0", "1", "2"]
    fashion = dataset_class_names(DataConfig(dataset="fashion-mnist"), 10)
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot"
