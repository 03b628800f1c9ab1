"""Epoch checkpoints: a run's whole state after a finished epoch, so that a run stopped
after epoch k (a killed or stopped worker) continues from k + 1 exactly as if it had
never stopped: on CPU its curves equal an uninterrupted run's bit for bit.

What the rest of a run depends on, and where each part is kept:

- the weights and the norm layers' running statistics: ``model.state_dict()``;
- the optimizer: momentum buffers, Adam's moments and step counts (``state_dict()``);
- the learning-rate schedule's position: the schedule is a pure function of the optimizer
  step (``trainer._schedule.lr_at``), so the step count is all of it;
- every random stream training draws from: torch's default CPU generator (dropout on
  CPU), the CUDA device's default generator (dropout on CUDA) and the run's own generator
  (data order and augmentation, on the training device). numpy and Python's ``random``
  are only used, seeded from the config, while the data is prepared, which a resumed run
  repeats identically, so they carry no state between epochs;
- the history so far: the epoch records and the best epoch (for the best checkpoint).

Like best checkpoints, the file holds plain tensors and JSON-able values only and loads
with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import Tensor, nn

from trainer._checkpoint import atomic_torch_save
from trainer._config import RunConfig
from trainer._errors import TrainerError
from trainer._history import EpochRecord, History

FORMAT_VERSION = 1
_KIND = "sweepdoc-epoch-state"


@dataclass(frozen=True)
class ResumeState:
    """A run's state after its epoch ``epoch`` (see the module docstring)."""

    config: RunConfig  # as passed to ``train`` (before ``init_from`` resolves the model)
    epoch: int  # the last finished epoch, 1-based
    step: int  # optimizer steps taken so far: the schedule's position
    model_state: dict[str, Tensor]
    optimizer_state: dict[str, Any]
    cpu_rng: Tensor  # torch's default CPU generator
    cuda_rng: Tensor | None  # the training CUDA device's default generator; None on CPU
    generator_device: str  # device type of the run's data-order/augmentation generator
    generator_state: Tensor
    records: list[dict[str, Any]]  # EpochRecord fields, epochs 1..epoch
    best_epoch: int | None
    best_val_acc: float | None

    def mismatch(self, config: RunConfig, *, device: str) -> str | None:
        """Why this state cannot continue a run of *config* on *device* exactly (the
        differing settings, or the device type), or None when it can."""
        device_type = torch.device(device).type
        if device_type != self.generator_device:
            return (
                f"the epoch state was written on {self.generator_device}, this run is on "
                f"{device_type}: their random streams differ, so it cannot continue exactly"
            )
        # The CUDA device's index may change (another worker's GPU); nothing else may.
        saved, wanted = _flat(self.config.to_json()), _flat(config.to_json())
        for flat in (saved, wanted):
            flat.pop("optim.device", None)
        differing = sorted(k for k in saved.keys() | wanted.keys() if saved.get(k) != wanted.get(k))
        if differing:
            shown = ", ".join(
                f"{k}={saved.get(k)!r} (saved) vs {wanted.get(k)!r}" for k in differing
            )
            return f"the epoch state belongs to another run config: {shown}"
        return None


def capture_state(
    *,
    config: RunConfig,
    epoch: int,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    history: History,
) -> ResumeState:
    """The run's state right after *epoch* (tensors copied to the CPU)."""
    return ResumeState(
        config=config,
        epoch=epoch,
        step=step,
        model_state={k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        optimizer_state=optimizer.state_dict(),
        cpu_rng=torch.get_rng_state(),
        cuda_rng=torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        generator_device=generator.device.type,
        generator_state=generator.get_state(),
        records=history.record_dicts(),
        best_epoch=history.best_epoch,
        best_val_acc=history.best_val_acc,
    )


def restore_state(
    state: ResumeState,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    device: torch.device,
    history: History,
) -> None:
    """Put *state* back into a freshly built run: weights, optimizer, every random stream
    and the history. Call it after the model is built (building draws from the RNG)."""
    model.load_state_dict(state.model_state)
    optimizer.load_state_dict(state.optimizer_state)
    torch.set_rng_state(state.cpu_rng)
    if device.type == "cuda" and state.cuda_rng is not None:
        torch.cuda.set_rng_state(state.cuda_rng, device)
    generator.set_state(state.generator_state)
    history.records[:] = [EpochRecord(**record) for record in state.records]
    history.best_epoch, history.best_val_acc = state.best_epoch, state.best_val_acc


def save_resume_state(path: Path, state: ResumeState) -> None:
    """Write *state* to *path* atomically: a reader (the next worker) sees the previous
    epoch's complete file or this one, never half of one."""
    atomic_torch_save(
        path,
        {
            "kind": _KIND,
            "format_version": FORMAT_VERSION,
            "config": state.config.to_json(),
            "epoch": state.epoch,
            "step": state.step,
            "model_state": state.model_state,
            "optimizer_state": state.optimizer_state,
            "cpu_rng": state.cpu_rng,
            "cuda_rng": state.cuda_rng,
            "generator_device": state.generator_device,
            "generator_state": state.generator_state,
            "records": state.records,
            "best_epoch": state.best_epoch,
            "best_val_acc": state.best_val_acc,
        },
    )


def load_resume_state(path: Path | str) -> ResumeState:
    """Read an epoch state written by ``train(..., epoch_state_path=...)``; raises
    :class:`TrainerError` naming the file when it is missing or not such a file."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"epoch state {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load's unpickling errors have no common base class
        raise TrainerError(f"cannot read epoch state {path}: {e}") from e
    try:
        if data.get("kind") != _KIND or data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"kind={data.get('kind')!r}, format_version={data.get('format_version')!r}; "
                f"expected {_KIND!r}, {FORMAT_VERSION}"
            )
        return ResumeState(
            config=RunConfig.model_validate(data["config"]),
            epoch=int(data["epoch"]),
            step=int(data["step"]),
            model_state=data["model_state"],
            optimizer_state=data["optimizer_state"],
            cpu_rng=data["cpu_rng"],
            cuda_rng=data["cuda_rng"],
            generator_device=str(data["generator_device"]),
            generator_state=data["generator_state"],
            records=list(data["records"]),
            best_epoch=data["best_epoch"],
            best_val_acc=data["best_val_acc"],
        )
    except (ValidationError, AttributeError, KeyError, TypeError, ValueError) as e:
        raise TrainerError(f"{path} is not a sweepdoc epoch state: {e}") from e


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` → ``{"optim.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, f"{name}."))
        else:
            out[name] = value
    return out
