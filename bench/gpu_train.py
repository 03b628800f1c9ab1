"""Training throughput (images/s) of the trainer against two hand-written loops, on
CIFAR-shaped synthetic data with the resnet config. Meant for a CUDA machine; runs
anywhere (use fewer images on a CPU).

- trainer: ``trainer.train`` on synthetic CIFAR-10 pickle batches written to a temp
  folder (so the real loading path runs), data resident on the device, batched
  crop+flip on the device, bf16 autocast + channels_last on CUDA; its own
  ``EpochRecord.images_per_s`` (training phase only).
- minimal: the same model, tensors, augmentation, batch size and seed in a bare loop.
- dataloader: the usual torchvision pipeline: uint8 HWC images in a Dataset,
  ``RandomCrop(32, 4)`` + ``RandomHorizontalFlip`` + ``ToTensor`` + ``Normalize`` in
  DataLoader worker processes, batches copied to the device each step.

    .venv/bin/python bench/gpu_train.py                     # 50,000 images on CUDA
    .venv/bin/python bench/gpu_train.py --images 2000 --epochs 2 --device cpu

``bench/gpu_check.py`` (the one-shot GPU check) runs the same measurement through
``cifar_config`` and ``measure_loops``.
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train
from trainer._batches import augment_batch, crop_padding
from trainer._data import prepare_data
from trainer._loop import resolve_device, uses_bf16
from trainer._models import build_model


def write_synthetic_cifar(root: Path, images: int, seed: int = 0, signal: float = 0.0) -> None:
    """Random uint8 images in torchvision's cifar-10-batches-py layout. With *signal* > 0
    each image is that fraction its class's fixed random pattern (the rest noise), so the
    set is learnable and a study's curves and labels mean something."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (10, 3072)).astype(np.float32)
    per_batch = -(-images // 5)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = per_batch if i < 5 else 10
        labels = rng.integers(0, 10, n)
        noise = rng.integers(0, 256, (n, 3072)).astype(np.float32)
        data = (signal * patterns[labels] + (1.0 - signal) * noise).astype(np.uint8)
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels.tolist()}, f)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def minimal_loop(config: RunConfig, device: torch.device, epochs: int) -> list[float]:
    """Bare loop with the trainer's data and augmentation; images/s per epoch."""
    o = config.optim
    cuda = device.type == "cuda"
    bf16 = uses_bf16(o.precision, device)
    torch.manual_seed(o.seed)
    data = prepare_data(config.data, device, channels_last=cuda)
    c, h, _ = data.input_shape
    model = build_model(config.model, in_channels=c, image_size=h, num_classes=data.num_classes)
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator(device=device).manual_seed(o.seed)
    n, pad = len(data.train_y), crop_padding(h)
    rates = []
    for _ in range(epochs):
        _sync(device)
        start = time.perf_counter()
        perm = torch.randperm(n, device=device, generator=generator)
        xs = augment_batch(data.train_x[perm], pad=pad, flip=True, generator=generator)
        if cuda:
            xs = xs.contiguous(memory_format=torch.channels_last)
        ys = data.train_y[perm]
        for i in range(0, n, o.batch_size):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = criterion(model(xs[i : i + o.batch_size]).float(), ys[i : i + o.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        _sync(device)
        rates.append(n / (time.perf_counter() - start))
    return rates


def dataloader_loop(
    config: RunConfig, device: torch.device, epochs: int, workers: int
) -> list[float]:
    """The textbook torchvision pipeline; images/s per epoch."""
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms
    from torchvision.datasets import CIFAR10

    o = config.optim
    cuda = device.type == "cuda"
    bf16 = uses_bf16(o.precision, device)
    assert config.data.data_dir is not None
    torch.manual_seed(o.seed)
    # Same presence-checked reader as the trainer (the synthetic files have no md5 match).
    from trainer._sources import _cifar_class

    raw: CIFAR10 = _cifar_class("cifar10")(str(config.data.data_dir), train=True)
    mean = (raw.data / 255.0).mean(axis=(0, 1, 2)).tolist()
    std = (raw.data / 255.0).std(axis=(0, 1, 2)).tolist()
    tf = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )

    class Images(Dataset[tuple[torch.Tensor, int]]):
        def __len__(self) -> int:
            return len(raw.data)

        def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
            from PIL import Image

            return tf(Image.fromarray(raw.data[i])), int(raw.targets[i])

    loader = DataLoader(
        Images(),
        batch_size=o.batch_size,
        shuffle=True,
        num_workers=workers,
        pin_memory=cuda,
        drop_last=False,
        persistent_workers=workers > 0,
    )
    model = build_model(config.model, in_channels=3, image_size=32, num_classes=10)
    model = model.to(device, memory_format=torch.channels_last if cuda else torch.contiguous_format)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    criterion = nn.CrossEntropyLoss()
    rates = []
    for _ in range(epochs):
        _sync(device)
        start, seen = time.perf_counter(), 0
        for xb, yb in loader:
            xb = xb.to(device, non_blocking=True)
            if cuda:
                xb = xb.contiguous(memory_format=torch.channels_last)
            yb = yb.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = criterion(model(xb).float(), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(yb)
        _sync(device)
        rates.append(seen / (time.perf_counter() - start))
    return rates


def cifar_config(
    data_dir: Path,
    *,
    width: int,
    depth: int,
    stages: int,
    batch_size: int,
    epochs: int,
    device: torch.device,
    precision: str = "auto",
) -> RunConfig:
    """The resnet run every loop trains: synthetic CIFAR-10 in *data_dir* (written by
    ``write_synthetic_cifar``), crop+flip, a 2 % val split (the benchmark is about training
    throughput)."""
    return RunConfig(
        data=DataConfig(
            dataset="cifar10", data_dir=data_dir, val_fraction=0.02, augment="crop+flip"
        ),
        model=ModelConfig(arch="resnet", width=width, depth=depth, stages=stages),
        optim=OptimConfig.model_validate(
            {
                "lr": 0.05,
                "epochs": epochs,
                "batch_size": batch_size,
                "device": str(device),
                "precision": precision,
            }
        ),
    )


def images_for(train_images: int) -> int:
    """Images to write so that the 2 % val split leaves *train_images* for training."""
    return int(train_images / 0.98) + 1


def measure_loops(
    config: RunConfig, device: torch.device, *, epochs: int, loader_workers: int
) -> dict[str, list[float]]:
    """images/s per epoch of the trainer, the minimal loop and the DataLoader loop."""
    return {
        "trainer": [r.images_per_s for r in train(config).records],
        "minimal": minimal_loop(config, device, epochs),
        "dataloader": dataloader_loop(config, device, epochs, loader_workers),
    }


def steady_rate(rates: list[float]) -> float:
    """The median of the epochs after the first (warm-up: cuDNN autotuning, allocation)."""
    return statistics.median(rates[1:] or rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000, help="training images (+ val)")
    parser.add_argument("--epochs", type=int, default=4, help="first epoch is warm-up")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--stages", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader workers")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(
        f"device {device}"
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    )

    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_cifar(Path(tmp), images_for(args.images))
        config = cifar_config(
            Path(tmp), width=args.width, depth=args.depth, stages=args.stages,
            batch_size=args.batch_size, epochs=args.epochs, device=device,
        )
        results = measure_loops(config, device, epochs=args.epochs, loader_workers=args.workers)
    print(
        f"resnet width {args.width} depth {args.depth} stages {args.stages}, "
        f"batch {args.batch_size}, {args.images} images, median of epochs 2..{args.epochs}"
    )
    trainer_rate = steady_rate(results["trainer"])
    for name, rates in results.items():
        rate = steady_rate(rates)
        print(f"{name:10s} {rate:10.0f} images/s   trainer/this = {trainer_rate / rate:.2f}")


if __name__ == "__main__":
    main()
