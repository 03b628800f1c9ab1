"""Packed training: K runs that differ only in optimizer settings, trained as one fused
network on the same batches (issue 15; HFTA, Wang et al., MLSys 2021).

Each member keeps its own life, as if it ran alone in ``trainer.train``: its own history,
on-epoch callback, best checkpoint and epoch state, and with the same config and seed
the same curves within float rounding (tests/trainer/test_packed_equivalence.py).

How a member leaves the pack (stopped by its callback, diverged, or done): within an
epoch it is *masked* on the device (no host synchronisation): from the step its loss is
not finite, its loss is left out of the sum that is backpropagated and the optimizer
neither updates its weights nor reads its gradients, so its NaN cannot reach another
member. At the end of the epoch the pack is *rebuilt* without it (weights, norm
statistics and optimizer state of the others sliced out), so the members that go on no
longer pay for its compute: in a learning-rate search the high rates diverge early.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer._batches import BatchSource, batch_bounds
from trainer._checkpoint import BestBy, is_best_epoch
from trainer._config import RunConfig
from trainer._data import prepare_data
from trainer._errors import ConfigError
from trainer._history import EpochRecord, History, RunStatus, Stop
from trainer._host import tune_host
from trainer._loop import augmentation, resolve_device, uses_bf16
from trainer._models import build_model
from trainer._packed_check import can_pack
from trainer._packed_epoch import EpochShape, EpochStats, Member, PackRun, evaluate, train_epoch
from trainer._packed_models import Pack
from trainer._packed_resume import check_resume_states, restore_members
from trainer._packed_saves import as_unpacked, save_member_best, save_member_epoch_state
from trainer._resume import ResumeState
from trainer._schedule import lr_at

OnMemberEpoch = Callable[[int, EpochRecord, History], Stop | None]
OnMemberLeave = Callable[[int, History], None]


@dataclass(frozen=True)
class MemberEpoch:
    """One member's finished epoch, as ``on_pack_epoch`` is given it."""

    index: int  # the member's position in the caller's configs
    record: EpochRecord
    history: History  # the record already added


# The pack's epoch end: every member still in the pack, in index order; one answer each.
OnPackEpoch = Callable[[Sequence[MemberEpoch]], Sequence[Stop | None]]


def train_packed(
    configs: Sequence[RunConfig],
    *,
    on_epoch: OnMemberEpoch | None = None,
    on_pack_epoch: OnPackEpoch | None = None,
    on_leave: OnMemberLeave | None = None,
    checkpoint_paths: Sequence[Path | None] | None = None,
    epoch_state_paths: Sequence[Path | None] | None = None,
    resume_from: Sequence[ResumeState | None] | None = None,
    best_by: BestBy = "val_acc",
) -> list[History]:
    """Train the runs of *configs* as one packed network; their histories, in order.

    The configs must pass :func:`can_pack` (same data, model, batches and seed; they may
    differ in ``optim.lr``, ``weight_decay``, ``momentum`` and ``grad_clip``), else
    :class:`ConfigError` with its reason. Each member i behaves as ``trainer.train(configs[i],
    on_epoch=..., checkpoint_path=checkpoint_paths[i], epoch_state_path=epoch_state_paths[i])``
    would:

    - ``on_epoch(i, record, history)`` runs after each of member i's epochs (members in
      index order); returning :class:`Stop` ends member i after that epoch (its weights
      no longer change; it leaves the pack) while the others go on;
    - or, instead, ``on_pack_epoch(epochs)`` runs once per epoch with every member still
      in the pack (a :class:`MemberEpoch` each, index order, every record already added
      to its history) and answers with one ``Stop`` or None per member: a caller that
      stores the members' epochs together (one transaction per pack-epoch);
    - a non-finite loss ends member i alone as ``diverged`` (the others are untouched);
    - ``on_leave(i, history)`` runs once member i has left the pack early (stopped or
      diverged), its files written and its history final, while the others go on (the
      caller can store its result now rather than when the pack ends);
    - its best epoch's state (by ``best_by``) goes to ``checkpoint_paths[i]`` and, after every
      epoch but a diverged one, its whole state to ``epoch_state_paths[i]``, both in the
      unpacked formats (``load_checkpoint``; ``train(resume_from=load_resume_state(...))``
      continues member i alone exactly).

    ``resume_from`` (one :class:`ResumeState` per member, written by a pack after the same
    epoch) continues the pack exactly, as ``train(resume_from=...)`` continues one run;
    states from different points are a :class:`ConfigError` (resume those alone).

    Per-member timings (``seconds``, ``images_per_s``) are the pack's: the members share
    every step. The epoch in which a member diverges evaluates its weights from before
    its non-finite step (an unpacked run takes that step first); its status, reason and
    training loss are the unpacked run's.
    """
    if why := can_pack(configs):
        raise ConfigError(f"cannot train these runs packed: {why}")
    if on_epoch is not None and on_pack_epoch is not None:
        raise ConfigError("on_epoch, on_pack_epoch: give one of them, not both")
    k = len(configs)
    best_paths = _per_member(checkpoint_paths, k, "checkpoint_paths")
    state_paths = _per_member(epoch_state_paths, k, "epoch_state_paths")
    o = configs[0].optim
    device = resolve_device(o.device)
    tune_host(device)  # cuDNN autotuning on a GPU; on a CPU, freed memory kept for reuse
    torch.manual_seed(o.seed)  # model init and dropout: the seed all members share
    data = prepare_data(configs[0].data, device, channels_last=False)
    try:
        members = [Member(i, c, best_paths[i], state_paths[i]) for i, c in enumerate(configs)]
        states = check_resume_states(members, resume_from or [None] * k, device)
        callbacks = _Callbacks(on_pack_epoch or _each_member(on_epoch), on_leave, best_by)
        return _train_pack(members, data, device, callbacks, states)
    finally:
        data.close()


def _per_member(paths: Sequence[Path | None] | None, k: int, name: str) -> list[Path | None]:
    if paths is None:
        return [None] * k
    if len(paths) != k:
        raise ConfigError(f"{name}: needs one entry per config ({k}), got {len(paths)}")
    return list(paths)


@dataclass(frozen=True)
class _Callbacks:
    """What the caller asked for at each member's epoch end."""

    on_pack_epoch: OnPackEpoch
    on_leave: OnMemberLeave | None
    best_by: BestBy


def _each_member(on_epoch: OnMemberEpoch | None) -> OnPackEpoch:
    """The per-member callback as a pack-epoch one: called for each member in turn."""

    def on_pack_epoch(epochs: Sequence[MemberEpoch]) -> list[Stop | None]:
        if on_epoch is None:
            return [None] * len(epochs)
        return [on_epoch(e.index, e.record, e.history) for e in epochs]

    return on_pack_epoch


def _train_pack(
    members: list[Member],
    data: BatchSource,
    device: torch.device,
    callbacks: _Callbacks,
    states: list[ResumeState],
) -> list[History]:
    first = members[0].config
    o = first.optim
    c, h, w = data.input_shape
    model = build_model(
        first.model, in_channels=c, image_size=min(h, w), num_classes=data.num_classes
    ).to(device)
    for member in members:
        member.history = History.starting(member.config, data, str(device))
    first_epoch = 1
    if states:
        networks, optimizers = restore_members(model, members, states, device)
        run = PackRun.start(members, Pack.of(networks), device)
        run.optimizer.load_members(optimizers)
        run.generator.set_state(states[0].generator_state)
        run.step, first_epoch = states[0].step, states[0].epoch + 1
    else:
        # One seed, one initialisation: every member starts from the weights its unpacked
        # run would (trainer._packed_check says why members share the seed).
        run = PackRun.start(members, Pack.of([model] * len(members)), device)
    pad, flip = augmentation(first, data)
    epoch_shape = EpochShape(
        bounds=batch_bounds(data.train_size, o.batch_size),
        pad=pad,
        flip=flip,
        bf16=uses_bf16(o.precision, device),
        probe_relu=first.model.activation == "relu",
    )
    for epoch in range(first_epoch, o.epochs + 1):
        start = time.perf_counter()
        run.pack.model.train()
        stats = train_epoch(run, data, epoch_shape)
        stats.train_seconds = time.perf_counter() - start
        stats.val = evaluate(run, data, epoch_shape)
        stats.seconds = time.perf_counter() - start
        leaving = _close_epoch(run, epoch, stats, data, callbacks)
        if callbacks.on_leave is not None:
            for position in sorted(leaving):
                member = run.members[position]
                assert member.history is not None
                callbacks.on_leave(member.index, member.history)
        if len(leaving) == run.pack.k:
            break
        if leaving:
            run.without(leaving)
    for member in run.members:
        assert member.history is not None
        if member.history.status is RunStatus.RUNNING:
            member.history.status = RunStatus.COMPLETED
    return [m.history for m in members if m.history is not None]


def _close_epoch(
    run: PackRun, epoch: int, stats: EpochStats, data: BatchSource, callbacks: _Callbacks
) -> set[int]:
    """Record every member's epoch, hand them to the caller at once, save what each saves;
    the positions of the members that leave the pack (diverged or stopped; a member
    finishing its last epoch stays)."""
    epochs = [_add_record(run, position, epoch, stats) for position in range(run.pack.k)]
    stops = list(callbacks.on_pack_epoch(epochs))
    if len(stops) != len(epochs):
        raise ConfigError(
            f"on_pack_epoch: answered {len(stops)} stops for the pack's {len(epochs)} members"
        )
    return {
        position
        for position, stop in enumerate(stops)
        if _save_member(run, position, stop, data, callbacks.best_by)
    }


def _add_record(run: PackRun, position: int, epoch: int, stats: EpochStats) -> MemberEpoch:
    """The member's epoch record, added to its history."""
    member = run.members[position]
    history = member.history
    assert history is not None
    o = member.config.optim
    train_loss, val = stats.train_loss[position], stats.val[position]
    val_loss, val_acc, dead = val
    grad_norm, grad_first, grad_last = run.meter.result(position)
    record = EpochRecord(
        epoch=epoch,
        train_loss=train_loss,
        train_acc=stats.train_acc[position],
        val_loss=val_loss,
        val_acc=val_acc,
        lr=lr_at(stats.last_step[position], steps_per_epoch=stats.steps_per_epoch, cfg=o),
        seconds=stats.seconds,
        images_per_s=(
            stats.seen[position] / stats.train_seconds if stats.train_seconds > 0 else math.inf
        ),
        grad_norm=grad_norm,
        grad_norm_first=grad_first,
        grad_norm_last=grad_last,
        dead_relu_fraction=dead,
    )
    history.add_epoch(record, blew_up=stats.blew_up[position])
    return MemberEpoch(member.index, record, history)


def _save_member(
    run: PackRun, position: int, stop: Stop | None, data: BatchSource, best_by: BestBy
) -> bool:
    """Write the member's files for the epoch its caller has seen; True when it leaves the
    pack (diverged, or *stop*)."""
    member = run.members[position]
    history = member.history
    assert history is not None
    if history.status is RunStatus.DIVERGED:
        return True
    if stop is not None and stop.discard_epoch:
        return _leaves(history, stop)  # not its epoch to keep: no files (trainer.Stop)
    # After the callback, as in trainer.train: the epoch is recorded before its files are
    # written.
    best = member.best_checkpoint is not None and is_best_epoch(history.records, best_by)
    if not best and member.epoch_state is None:
        return _leaves(history, stop)
    # The member out of the pack once for both writes (its weights and optimizer state
    # sliced out and loaded into an unpacked network: the cost of a write, paid once).
    unpacked = as_unpacked(run.pack, run.optimizer, position, history)
    if best and member.best_checkpoint is not None:
        save_member_best(member.best_checkpoint, member=unpacked, history=history, data=data)
    if member.epoch_state is not None:
        save_member_epoch_state(
            member.epoch_state,
            member=unpacked,
            history=history,
            step=run.step,
            generator=run.generator,
            device=run.device,
        )
    return _leaves(history, stop)


def _leaves(history: History, stop: Stop | None) -> bool:
    """Apply the callback's *stop*, if any, to the member's history; True when it stops."""
    if stop is None:
        return False
    history.status, history.stop_reason = stop.status, stop.reason
    return True
