"""Loading mnist / fashion-mnist / cifar10 / cifar100 / imagefolder from tiny files the tests
write themselves in torchvision's layouts (never a download), and refusing paths outside
the data root."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import DataConfig, DatasetError, ModelConfig, OptimConfig, RunConfig, train
from trainer._data import prepare_data

CPU = torch.device("cpu")


def write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file (the MNIST format), gzipped like the downloads: magic 0x08 = ubyte."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, folder: str, train_n: int = 40, test_n: int = 10) -> None:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", train_n), ("t10k", test_n)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def write_cifar(root: Path, name: str, per_batch: int = 20) -> None:
    rng = np.random.default_rng(0)
    if name == "cifar10":
        folder, files, key = (
            root / "cifar-10-batches-py",
            [
                *(f"data_batch_{i}" for i in range(1, 6)),
                "test_batch",
            ],
            "labels",
        )
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], "fine_labels"
    folder.mkdir(parents=True)
    classes = 10 if name == "cifar10" else 100
    for i, filename in enumerate(files):
        batch = {
            "data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            key: [(i * per_batch + j) % classes for j in range(per_batch)],
        }
        with open(folder / filename, "wb") as f:
            pickle.dump(batch, f)


def write_image_tree(
    folder: Path, classes: dict[str, int], size: int = 12, mode: str = "L"
) -> None:
    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True)
        for i in range(count):
            shape = (size, size) if mode == "L" else (size, size, 3)
            Image.fromarray(rng.integers(0, 256, shape).astype(np.uint8), mode).save(
                folder / name / f"{i}.png"
            )


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")]
)
def test_mnist_like_loads_from_idx_gz_files(tmp_path: Path, name: str, folder: str) -> None:
    write_mnist(tmp_path, folder)
    data = prepare_data(DataConfig(dataset=name, data_dir=tmp_path, val_fraction=0.25), CPU)
    assert data.input_shape == (1, 28, 28)
    assert len(data.train_y) == 30 and len(data.val_y) == 10  # only the train split is read
    assert data.num_classes == 10


def test_mnist_missing_files_are_named_with_their_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        prepare_data(DataConfig(dataset="mnist", data_dir=tmp_path), CPU)
    message = str(excinfo.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte"):
        assert stem in message
    # torchvision's semantics: the t10k files are part of the layout even for training.
    write_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte "):
        prepare_data(DataConfig(dataset="mnist", data_dir=tmp_path), CPU)


@pytest.mark.parametrize(("name", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_cifar_loads_from_pickle_batches(tmp_path: Path, name: str, classes: int) -> None:
    write_cifar(tmp_path, name, per_batch=200 if name == "cifar100" else 20)
    data = prepare_data(DataConfig(dataset=name, data_dir=tmp_path, val_fraction=0.5), CPU)
    assert data.input_shape == (3, 32, 32)
    assert data.num_classes == classes
    expected_train = 100 if name == "cifar10" else 200  # 5 batches of 20, or one of 200
    assert len(data.train_y) + len(data.val_y) == expected_train
    assert len(data.mean) == 3


def test_cifar_missing_files_are_named_with_their_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as excinfo:
        prepare_data(DataConfig(dataset="cifar10", data_dir=tmp_path), CPU)
    message = str(excinfo.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "test_batch" in message


def test_unreadable_batch_files_are_dataset_errors(tmp_path: Path) -> None:
    write_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80garbage")
    with pytest.raises(DatasetError, match="cannot read the batch files"):
        prepare_data(DataConfig(dataset="cifar10", data_dir=tmp_path), CPU)
    write_mnist(tmp_path, "MNIST")
    (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match="cannot decompress"):
        prepare_data(DataConfig(dataset="mnist", data_dir=tmp_path), CPU)


def test_datasets_other_than_digits_need_a_data_dir() -> None:
    with pytest.raises(DatasetError, match="data root"):
        prepare_data(DataConfig(dataset="cifar10"), CPU)


def test_imagefolder_single_tree_is_split_and_trains(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "shapes", {"circle": 10, "square": 10})
    config = RunConfig(
        data=DataConfig(dataset="imagefolder:shapes", data_dir=tmp_path, val_fraction=0.3),
        model=ModelConfig(width=4),
        optim=OptimConfig(epochs=1, device="cpu", batch_size=8),
    )
    history = train(config)
    assert history.data.input_shape == (1, 12, 12)
    assert history.data.num_classes == 2
    assert (history.data.train_size, history.data.val_size) == (14, 6)
    assert len(history.records) == 1


def test_imagefolder_train_val_tree_keeps_its_split_and_resizes(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "set" / "train", {"a": 6, "b": 4}, size=10, mode="RGB")
    write_image_tree(tmp_path / "set" / "val", {"a": 2, "b": 3}, size=16, mode="RGB")
    with pytest.raises(DatasetError, match="image_size"):
        prepare_data(DataConfig(dataset="imagefolder:set", data_dir=tmp_path), CPU)
    data = prepare_data(DataConfig(dataset="imagefolder:set", data_dir=tmp_path, image_size=8), CPU)
    assert data.input_shape == (3, 8, 8)
    assert len(data.train_y) == 10 and len(data.val_y) == 5
    assert data.val_y.tolist() == [0, 0, 1, 1, 1]


def test_imagefolder_paths_outside_the_data_root_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    outside = tmp_path / "elsewhere"
    write_image_tree(outside, {"a": 3, "b": 3})
    root.mkdir()
    for path in ("../elsewhere", str(outside), "x/../../elsewhere"):
        with pytest.raises(DatasetError, match="outside the data root"):
            prepare_data(DataConfig(dataset=f"imagefolder:{path}", data_dir=root), CPU)
    # A symlink inside the root that points out of it.
    os.symlink(outside, root / "link")
    with pytest.raises(DatasetError, match="outside the data root"):
        prepare_data(DataConfig(dataset="imagefolder:link", data_dir=root), CPU)
    # A class folder inside the tree that links out of it.
    write_image_tree(root / "tree", {"a": 3})
    os.symlink(outside / "b", root / "tree" / "b")
    with pytest.raises(DatasetError, match="outside the image folder"):
        prepare_data(DataConfig(dataset="imagefolder:tree", data_dir=root), CPU)
    with pytest.raises(DatasetError, match="no folder"):
        prepare_data(DataConfig(dataset="imagefolder:missing", data_dir=root), CPU)


def _folder_run(tmp_path: Path, storage: str, **data: object) -> RunConfig:
    return RunConfig(
        data=DataConfig.model_validate(
            {
                "dataset": "imagefolder:shapes",
                "data_dir": tmp_path,
                "val_fraction": 0.25,
                "augment": "none",
                "storage": storage,
                **data,
            }
        ),
        model=ModelConfig(width=4),
        optim=OptimConfig(epochs=2, device="cpu", batch_size=8, lr=0.05),
    )


def test_streamed_image_folder_trains_exactly_like_the_in_memory_one(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "shapes", {"a": 12, "b": 12, "c": 12}, mode="RGB")
    in_memory = train(_folder_run(tmp_path, "memory"))
    streamed = train(_folder_run(tmp_path, "stream"))
    assert streamed.status is in_memory.status
    # Sizes, shape and the per-channel mean and std all alike.
    assert streamed.data == in_memory.data
    assert streamed.data.input_shape == (3, 12, 12)
    # Same files, same order, same arithmetic: the same run.
    assert streamed.curves() == in_memory.curves()


def test_streamed_image_folder_augments_and_reports_bad_files(tmp_path: Path) -> None:
    write_image_tree(tmp_path / "shapes", {"a": 8, "b": 8}, mode="RGB")
    history = train(_folder_run(tmp_path, "stream", augment="crop+flip"))
    assert len(history.records) == 2
    # A file of another size, found only while streaming: a DatasetError naming it.
    Image.fromarray(np.zeros((5, 5, 3), dtype=np.uint8), "RGB").save(tmp_path / "shapes/a/z.png")
    with pytest.raises(DatasetError, match=r"z\.png is 5×5 but the first image is 12×12"):
        train(_folder_run(tmp_path, "stream"))


def test_storage_and_image_size_are_imagefolder_options() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="imagefolder datasets only"):
        DataConfig(dataset="digits", storage="stream")
    with pytest.raises(ValidationError, match="imagefolder datasets only"):
        DataConfig(dataset="cifar10", image_size=16)
