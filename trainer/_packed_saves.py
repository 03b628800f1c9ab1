"""What a packed member writes, in the formats of an unpacked run: its best checkpoint
(``trainer._checkpoint``) and its epoch state (``trainer._resume``). Both hold the
member's own weights and optimizer state as its unpacked network and torch optimizer
name them, so ``load_checkpoint``, ``init_from`` and ``train(resume_from=...)`` take
them as they take any other run's: a packed member's epoch state continues alone."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer._batches import BatchSource
from trainer._checkpoint import Checkpoint, save_checkpoint
from trainer._config import RunConfig
from trainer._history import History
from trainer._loop import _make_optimizer
from trainer._packed_models import Pack
from trainer._packed_optim import PackedOptimizer
from trainer._resume import ResumeState, save_resume_state


def member_optimizer_state(
    pack: Pack, optimizer: PackedOptimizer, position: int, config: RunConfig
) -> dict[str, object]:
    """The member's optimizer state as ``trainer.train``'s torch optimizer saves it."""
    like = _make_optimizer([p for p in pack.template.parameters() if p.requires_grad], config)
    return optimizer.member_state_dict(position, like)


def save_member_best(
    path: Path,
    *,
    pack: Pack,
    optimizer: PackedOptimizer,
    position: int,
    history: History,
    data: BatchSource,
    epoch: int,
) -> None:
    record = history.records[-1]
    save_checkpoint(
        path,
        Checkpoint(
            model_state=pack.member_state(position),
            optimizer_state=member_optimizer_state(pack, optimizer, position, history.config),
            config=history.config,
            epoch=epoch,
            metric={"val_acc": record.val_acc, "val_loss": record.val_loss},
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            train_size=data.train_size,
            mean=data.mean,
            std=data.std,
        ),
    )


def save_member_epoch_state(
    path: Path,
    *,
    pack: Pack,
    optimizer: PackedOptimizer,
    position: int,
    history: History,
    step: int,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    """The member's whole state after its last epoch (``trainer._resume.capture_state``'s
    contents): the random streams are the pack's, which are the member's own, since every
    member draws the same ones its unpacked run would."""
    state = ResumeState(
        config=history.config,
        epoch=history.records[-1].epoch,
        step=step,
        model_state={k: v.to("cpu") for k, v in pack.member_state(position).items()},
        optimizer_state=member_optimizer_state(pack, optimizer, position, history.config),
        cpu_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        generator_device=generator.device.type,
        generator_state=generator.get_state(),
        records=history.record_dicts(),
        best_epoch=history.best_epoch,
        best_val_acc=history.best_val_acc,
    )
    save_resume_state(path, state)
