"""Per training step: K separate CNNs against one packed network of K members, on the
digits, on this machine (issue 15: where does packing pay on a CPU?).

Both sides do what the trainers do each step: the forward pass, the loss, backward, the
per-parameter gradient norms (the health statistics) and the optimizer step (SGD with
momentum; separate: one ``torch.optim.SGD`` per model, as ``trainer.train`` makes;
packed: ``PackedOptimizer`` with per-member learning rates, as ``trainer.train_packed``
does). The data is the same batch of real digits each step; no evaluation. Sides
alternate within each repeat, so load from other processes hits both alike; the median
step is reported.

    .venv/bin/python bench/pack_step.py [--k 5] [--widths 8 16 32] [--arch simple]
        [--steps 40] [--repeats 3] [--threads N] [--runs EPOCHS]

Prints one row per width: wall ms per step for K separate models and for the packed
network, the speed-up (separate / packed), and the same ratio in process CPU time (the
steadier one on a shared machine: other processes stretch wall time, not our CPU time;
with --threads 1 the two agree on an idle machine). ``--runs EPOCHS`` adds whole runs: K
``trainer.train`` calls against one ``trainer.train_packed`` of the same K configs, which
also counts what packing saves outside the steps (data preparation, evaluation).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train, train_packed
from trainer._data import prepare_data
from trainer._models import Network, build_model
from trainer._packed_models import Pack
from trainer._packed_optim import PackedOptimizer

BATCH = 64  # the trainer's default batch size
LRS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 3e-2, 3e-3, 3e-4)  # the demo grid's rates, then more


def _separate_step(models: list[Network], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optims = [
        torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        for m, lr in zip(models, LRS, strict=False)
    ]
    criterion = nn.CrossEntropyLoss()

    def step() -> None:
        for model, optim in zip(models, optims, strict=True):
            loss = criterion(model(x), y)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.grad is not None]
            torch.stack(torch._foreach_norm(grads))  # the health statistics' one fused call
            optim.step()

    return step


def _packed_step(models: list[Network], x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    pack = Pack.of(models)
    k = pack.k
    params = list(pack.model.parameters())
    optim = PackedOptimizer(
        params,
        kind="sgd",
        lr=list(LRS[:k]),
        weight_decay=[5e-4] * k,
        momentum=[0.9] * k,
        nesterov=False,
    )
    active = torch.ones(k, dtype=torch.bool)

    def step() -> None:
        logits = pack.model(x)  # (K, B, classes)
        losses = (
            nn.functional.cross_entropy(
                logits.reshape(k * len(y), -1), y.repeat(k), reduction="none"
            )
            .view(k, -1)
            .mean(dim=1)
        )
        for p in params:
            p.grad = None
        losses.sum().backward()  # type: ignore[no-untyped-call]
        torch.stack([p.grad.view(k, -1).square().sum(dim=1) for p in params])  # type: ignore[union-attr]
        optim.step(1.0, active)

    return step


def _median_ms(step: Callable[[], None], steps: int) -> tuple[float, float]:
    """Median (wall, process CPU) milliseconds of one step."""
    for _ in range(3):  # warm-up: allocator, oneDNN kernel choice
        step()
    wall, cpu = [], []
    for _ in range(steps):
        start, start_cpu = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=5, help="members (the demo grid has 5)")
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--arch", default="simple", choices=["simple", "vgg", "resnet"])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument(
        "--runs",
        type=int,
        default=0,
        metavar="EPOCHS",
        help="also time whole runs of EPOCHS epochs: K trainer.train calls against one "
        "train_packed (data preparation and evaluation included)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = prepare_data(DataConfig(dataset="digits"), torch.device("cpu"))
    x, y = next(data.val_batches(BATCH, BATCH))  # (B, 1, 8, 8), (B,) real digits
    print(f"{args.arch} on digits, batch {BATCH}, K={args.k}, {torch.get_num_threads()} threads")
    print(
        f"{'width':>5}  {'separate ms':>11}  {'packed ms':>9}  {'speed-up':>8}  "
        f"{'CPU-time speed-up':>17}"
    )
    for width in args.widths:
        cfg = ModelConfig(arch=args.arch, width=width)
        separate, packed = [], []
        for _ in range(args.repeats):
            torch.manual_seed(0)
            models = [
                build_model(cfg, in_channels=1, image_size=8, num_classes=10) for _ in range(args.k)
            ]
            separate.append(_median_ms(_separate_step(models, x, y), args.steps))
            packed.append(_median_ms(_packed_step(models, x, y), args.steps))
        s, p = (statistics.median(w for w, _ in side) for side in (separate, packed))
        s_cpu, p_cpu = (statistics.median(c for _, c in side) for side in (separate, packed))
        print(
            f"{width:>5}  {s:>11.2f}  {p:>9.2f}  {s / p:>7.2f}x  {s_cpu / p_cpu:>16.2f}x",
            flush=True,
        )
    if args.runs:
        _whole_runs(args)


def _whole_runs(args: argparse.Namespace) -> None:
    """K ``train`` calls against one ``train_packed``, process CPU seconds, alternating."""
    print(f"whole runs, {args.runs} epochs, CPU seconds (median of {args.repeats})")
    print(f"{'width':>5}  {'separate s':>10}  {'packed s':>8}  {'speed-up':>8}")
    for width in args.widths:
        configs = [
            RunConfig(
                data=DataConfig(dataset="digits"),
                model=ModelConfig(arch=args.arch, width=width),
                optim=OptimConfig(lr=lr, epochs=args.runs, device="cpu"),
            )
            for lr in LRS[: args.k]
        ]
        separate, packed = [], []
        for _ in range(args.repeats):
            start = time.process_time()
            for config in configs:
                train(config)
            separate.append(time.process_time() - start)
            start = time.process_time()
            train_packed(configs)
            packed.append(time.process_time() - start)
        s, p = statistics.median(separate), statistics.median(packed)
        print(f"{width:>5}  {s:>10.2f}  {p:>8.2f}  {s / p:>7.2f}x", flush=True)


if __name__ == "__main__":
    main()
