"""What a packed member writes, in the formats of an unpacked run: its best checkpoint
(``trainer._checkpoint``) and its epoch state (``trainer._resume``). Both hold the
member's own weights and optimizer state as its unpacked network and torch optimizer
name them, so ``load_checkpoint``, ``init_from`` and ``train(resume_from=...)`` take
them as they take any other run's: a packed member's epoch state continues alone."""

from __future__ import annotations

from pathlib import Path

import torch

from trainer._batches import BatchSource
from trainer._checkpoint import save_best
from trainer._history import History
from trainer._loop import _make_optimizer
from trainer._models import Network
from trainer._packed_models import Pack
from trainer._packed_optim import PackedOptimizer
from trainer._resume import capture_state, save_resume_state


def as_unpacked(
    pack: Pack, optimizer: PackedOptimizer, position: int, history: History
) -> tuple[Network, torch.optim.Optimizer]:
    """The member at *position* as ``trainer.train`` would hold it: its weights in an
    unpacked network (the pack's template, reused) and its optimizer state in the torch
    optimizer its config makes, so the unpacked writers save it unchanged."""
    model = pack.template
    model.load_state_dict(pack.member_state(position))
    params = [p for p in model.parameters() if p.requires_grad]
    like = _make_optimizer(params, history.config)
    like.load_state_dict(optimizer.member_state_dict(position, like))
    return model, like


def save_member_best(
    path: Path,
    *,
    member: tuple[Network, torch.optim.Optimizer],
    history: History,
    data: BatchSource,
) -> None:
    """The member's best checkpoint after its last epoch (``trainer._checkpoint``);
    *member* is ``as_unpacked``'s, taken once for both of an epoch's writes."""
    model, like = member
    save_best(
        path,
        model=model,
        optimizer=like,
        config=history.config,
        data=data,
        record=history.records[-1],
    )


def save_member_epoch_state(
    path: Path,
    *,
    member: tuple[Network, torch.optim.Optimizer],
    history: History,
    step: int,
    generator: torch.Generator,
    device: torch.device,
) -> None:
    """The member's whole state after its last epoch (``trainer._resume``). The random
    streams are the pack's, which are the member's own: every member draws exactly what
    its unpacked run would."""
    model, like = member
    state = capture_state(
        config=history.config,
        epoch=history.records[-1].epoch,
        step=step,
        model=model,
        optimizer=like,
        generator=generator,
        device=device,
        history=history,
    )
    save_resume_state(path, state)
