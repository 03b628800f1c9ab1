"""Trainer overhead: epoch time of `trainer.train` against a minimal hand-written loop.

Same model (built by the trainer's builder, same seed), same normalised tensors, same
batch size, optimizer and constant learning rate, no augmentation, both evaluating the
validation split every epoch; the minimal loop skips everything else the trainer does
(health statistics, train loss/accuracy, schedule, divergence checks, records).
Runs alternate (trainer, minimal, trainer, ...) in one process so load from other
processes hits both alike; the first epoch of each run is dropped as warm-up.

    .venv/bin/python bench/train_overhead.py [--arch simple] [--epochs 6] [--repeats 3]

Prints the median epoch time of each and their ratio (target: trainer ≤ 1.05 × minimal),
as wall time and as process CPU time; on a shared machine the CPU-time ratio is the
steadier one (other processes stretch wall time, not our CPU time).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch
from torch import nn

from trainer import DataConfig, EpochRecord, History, ModelConfig, OptimConfig, RunConfig, train
from trainer._data import prepare_data
from trainer._models import build_model

Timings = list[tuple[float, float]]  # per epoch: (wall seconds, CPU seconds)


def minimal_loop(config: RunConfig, epochs: int) -> Timings:
    """The loop anyone would write by hand; returns per-epoch (wall, CPU) seconds."""
    o = config.optim
    device = torch.device("cpu")
    torch.manual_seed(o.seed)
    data = prepare_data(config.data, device)
    c, h, w = data.input_shape
    model = build_model(
        config.model, in_channels=c, image_size=min(h, w), num_classes=data.num_classes
    )
    optimizer = torch.optim.SGD(
        model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay
    )
    criterion = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(o.seed)
    n = len(data.train_y)
    times: Timings = []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        model.train()
        perm = torch.randperm(n, generator=generator)
        xs, ys = data.train_x[perm], data.train_y[perm]
        for i in range(0, n, o.batch_size):
            loss = criterion(model(xs[i : i + o.batch_size]), ys[i : i + o.batch_size])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(data.val_x)
            val_loss = float(criterion(logits, data.val_y))
            val_acc = float((logits.argmax(1) == data.val_y).float().mean())
        model.train()
        times.append((time.perf_counter() - start, time.process_time() - cpu))
        assert val_loss == val_loss and 0 <= val_acc <= 1
    return times


def trainer_loop(config: RunConfig) -> Timings:
    """Epoch boundaries are taken from the on-epoch callback (it runs right after each
    epoch), so the trainer's timing includes everything it does per epoch."""
    marks: list[tuple[float, float]] = []

    def on_epoch(_record: EpochRecord, _history: History) -> None:
        marks.append((time.perf_counter(), time.process_time()))

    start = (time.perf_counter(), time.process_time())
    train(config, on_epoch=on_epoch)
    bounds = [start, *marks]
    return [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(bounds)]


def add_recipe_options(
    parser: argparse.ArgumentParser, *, arch: str, epochs: int, threads: int
) -> None:
    """The options of the recipe an overhead benchmark times (this one and
    bench/service_overhead.py): --arch, --width, --epochs, --batch-size, --repeats, --threads
    (defaults as given, else width 32, batches of 64, 3 repeats)."""
    parser.add_argument("--arch", default=arch, choices=["simple", "vgg", "resnet"])
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=threads, help="torch threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(parser, arch="simple", epochs=6, threads=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = RunConfig(
        data=DataConfig(dataset="digits", augment="none"),
        model=ModelConfig(arch=args.arch, width=args.width),
        optim=OptimConfig(
            lr=0.05, epochs=args.epochs, batch_size=args.batch_size, schedule="none", device="cpu"
        ),
    )
    trainer_times: Timings = []
    minimal_times: Timings = []
    for _ in range(args.repeats):
        trainer_times += trainer_loop(config)[1:]  # the first epoch includes set-up
        minimal_times += minimal_loop(config, args.epochs)[1:]
    print(
        f"digits, {args.arch} width {args.width}, batch {args.batch_size}, "
        f"{args.threads} thread(s), {args.repeats}×{args.epochs - 1} epochs each"
    )
    for i, kind in enumerate(("wall", "cpu")):
        t = statistics.median(x[i] for x in trainer_times)
        m = statistics.median(x[i] for x in minimal_times)
        print(
            f"{kind:4}: trainer {t * 1000:7.1f} ms/epoch, minimal {m * 1000:7.1f} ms/epoch, "
            f"ratio {t / m:.3f} (target ≤ 1.05)"
        )


if __name__ == "__main__":
    main()
