"""One epoch of a packed network: the pack's training state, a pass over the training
split with every member's sums kept apart on the device, and the evaluation of every
member on the validation split (``trainer._packed_loop`` runs the epochs)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from trainer._batches import BatchSource
from trainer._config import RunConfig
from trainer._history import History
from trainer._loop import CUDA_FINITE_CHECK_EVERY, EVAL_BATCH, PROBE_IMAGES
from trainer._packed_health import (
    PackedGradNorms,
    clip_members,
    member_dead_fractions,
    packed_dead_relu_probe,
)
from trainer._packed_models import Pack
from trainer._packed_optim import PackedOptimizer
from trainer._schedule import lr_at


@dataclass
class Member:
    """One run in the pack: its place in the caller's list and what it writes."""

    index: int  # position in the caller's configs
    config: RunConfig
    best_checkpoint: Path | None
    epoch_state: Path | None
    history: History | None = None


@dataclass
class EpochStats:
    """One epoch of the pack, per position in the pack."""

    train_loss: list[float]
    train_acc: list[float]
    seen: list[int]
    last_step: list[int]  # each member's last optimizer step of the epoch
    blew_up: list[bool]
    steps_per_epoch: int
    train_seconds: float = 0.0  # wall time of the pack's training pass
    seconds: float = 0.0  # ... and of its evaluation too
    val: list[tuple[float, float, float | None]] = field(default_factory=list)


@dataclass
class PackRun:
    """The pack's training state; rebuilt smaller when members leave."""

    pack: Pack
    optimizer: PackedOptimizer
    meter: PackedGradNorms
    max_norm: Tensor  # (K,) each member's grad_clip, inf = no clipping
    members: list[Member]  # in pack order
    generator: torch.Generator
    device: torch.device
    label_smoothing: float
    step: int = 0

    @classmethod
    def start(cls, members: list[Member], pack: Pack, device: torch.device) -> PackRun:
        optims = [m.config.optim for m in members]
        o = optims[0]
        return cls(
            pack=pack,
            optimizer=PackedOptimizer(
                list(pack.model.parameters()),
                kind=o.optimizer,
                lr=[x.lr for x in optims],
                weight_decay=[x.weight_decay for x in optims],
                momentum=[x.momentum for x in optims],
                nesterov=o.nesterov,
            ),
            meter=PackedGradNorms(pack.model, pack.k, device),
            max_norm=torch.tensor([x.grad_clip or math.inf for x in optims], device=device),
            members=members,
            # Data order and augmentation draw from their own seeded stream, as unpacked.
            generator=torch.Generator(device=device).manual_seed(o.seed),
            device=device,
            label_smoothing=o.label_smoothing,
        )

    def without(self, leaving: set[int]) -> None:
        """Drop the members at positions *leaving* from the pack."""
        keep = [p for p in range(self.pack.k) if p not in leaving]
        self.pack = self.pack.keep(keep)
        self.optimizer = self.optimizer.keep(keep)
        self.optimizer.rebind(list(self.pack.model.parameters()))
        self.meter = PackedGradNorms(self.pack.model, self.pack.k, self.device)
        self.max_norm = self.max_norm[keep]
        self.members = [self.members[p] for p in keep]

    def member_losses(self, logits: Tensor, yb: Tensor) -> Tensor:
        """(K, B, classes), (B,) → (K,) each member's mean cross-entropy."""
        k, b = logits.shape[:2]
        losses = F.cross_entropy(
            logits.float().reshape(k * b, -1),
            yb.repeat(k),
            reduction="none",
            label_smoothing=self.label_smoothing,
        )
        return losses.view(k, b).mean(dim=1)


@dataclass(frozen=True)
class EpochShape:
    """What every epoch of the pack does the same way."""

    bounds: list[tuple[int, int]]  # the training batches of an epoch
    pad: int
    flip: bool
    bf16: bool
    probe_relu: bool


def train_epoch(run: PackRun, data: BatchSource, shape: EpochShape) -> EpochStats:
    """One pass of the pack over the training split.

    Every per-member sum stays on the device; a member whose loss turns non-finite is
    masked from that step on (``alive``) without a host synchronisation. The host looks
    at ``alive`` every step on CPU (every ``CUDA_FINITE_CHECK_EVERY`` on CUDA) only to end
    the epoch early once no member is left, as an unpacked run ends at its blow-up.
    """
    o = run.members[0].config.optim
    cuda = run.device.type == "cuda"
    check_every = CUDA_FINITE_CHECK_EVERY if cuda else 1
    k, device = run.pack.k, run.device
    unit = o.model_copy(update={"lr": 1.0})  # the schedule's factor; each member scales it
    run.meter.reset()
    loss_sum = torch.zeros(k, device=device)
    correct = torch.zeros(k, device=device, dtype=torch.long)
    batches_done = torch.zeros(k, device=device, dtype=torch.long)
    alive = torch.ones(k, device=device, dtype=torch.bool)
    first_step = run.step
    params = run.optimizer.params
    clipping = bool(torch.isfinite(run.max_norm).any())
    steps_per_epoch = len(shape.bounds)
    batches = data.train_batches(
        o.batch_size, run.generator, pad=shape.pad, flip=shape.flip, channels_last=False
    )
    for b, (xb, yb) in enumerate(batches):  # (B, C, H, W), (B,)
        scale = lr_at(run.step, steps_per_epoch=steps_per_epoch, cfg=unit)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=shape.bf16):
            logits = run.pack.model(xb)  # (K, B, classes)
            losses = run.member_losses(logits, yb)  # (K,)
        ok = alive & torch.isfinite(losses)
        for p in params:
            p.grad = None
        # Masked before backward: a member whose loss is not finite (or who is already
        # out) contributes nothing to the sum whose gradient is taken.
        torch.where(ok, losses, 0.0).sum().backward()  # type: ignore[no-untyped-call]
        squares = run.meter.squares()  # (P, K)
        run.meter.update(squares, ok)
        if clipping:
            clip_members(params, k, squares, run.max_norm)
        run.optimizer.step(scale, ok)
        run.step += 1
        # The step whose loss was not finite still counts in the member's epoch loss
        # (NaN, as unpacked), then the member is out.
        n = len(yb)
        loss_sum += torch.where(alive, losses.detach() * n, 0.0)
        correct += torch.where(alive, (logits.detach().argmax(dim=-1) == yb).sum(dim=1), 0)
        batches_done += alive
        alive = ok
        check = (b + 1) % check_every == 0 or b == steps_per_epoch - 1
        if check and not bool(alive.any()):
            break
    if cuda:
        torch.cuda.synchronize(device)
    done = batches_done.tolist()
    seen = [shape.bounds[d - 1][1] if d > 0 else 0 for d in done]
    sums, hits, out = loss_sum.tolist(), correct.tolist(), (~alive).tolist()
    return EpochStats(
        train_loss=[s / max(1, n) for s, n in zip(sums, seen, strict=True)],
        train_acc=[h / max(1, n) for h, n in zip(hits, seen, strict=True)],
        seen=seen,
        last_step=[first_step + max(0, d - 1) for d in done],
        blew_up=out,
        steps_per_epoch=steps_per_epoch,
    )


@torch.no_grad()
def evaluate(
    run: PackRun, data: BatchSource, shape: EpochShape
) -> list[tuple[float, float, float | None]]:
    """Each member's (mean loss, accuracy, dead-ReLU fraction or None) on the val split,
    in eval mode, on the batches ``trainer._loop.evaluate`` uses."""
    model, k, device = run.pack.model, run.pack.k, run.device
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros(k, device=device)
    correct = torch.zeros(k, device=device, dtype=torch.long)
    seen = 0
    dead: list[float | None] = [None] * k
    first = PROBE_IMAGES if shape.probe_relu else EVAL_BATCH
    for index, (xb, yb) in enumerate(data.val_batches(first, EVAL_BATCH)):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=shape.bf16):
            if shape.probe_relu and index == 0:
                with packed_dead_relu_probe(model, k) as counts:
                    logits = model(xb)  # (K, B, classes)
                dead = member_dead_fractions(counts, k)
            else:
                logits = model(xb)
            loss_sum += run.member_losses(logits, yb) * len(yb)
        correct += (logits.argmax(dim=-1) == yb).sum(dim=1)
        seen += len(yb)
    model.train(was_training)
    n = max(1, seen)
    losses, hits = loss_sum.tolist(), correct.tolist()
    return [(losses[m] / n, hits[m] / n, dead[m]) for m in range(k)]
