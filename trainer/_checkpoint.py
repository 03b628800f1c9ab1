"""Best-validation checkpoints: plain tensors and JSON-able values only, so they load with
``torch.load(weights_only=True)`` (no pickled classes, no code execution on load)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import ValidationError

from trainer._config import FinetuneStrategy, RunConfig
from trainer._errors import ConfigError, TrainerError
from trainer._finetune import datasets_similar, recommend_finetune

if TYPE_CHECKING:
    from trainer._batches import BatchSource

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint."""

    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    config: RunConfig
    epoch: int
    metric: dict[str, float]  # val_acc and val_loss at that epoch
    num_classes: int
    input_shape: tuple[int, int, int]
    train_size: int
    mean: list[float]
    std: list[float]


def save_checkpoint(path: Path, payload: Checkpoint) -> None:
    """Write atomically (temp file + rename) so a reader never sees half a file."""
    data = {
        "format_version": FORMAT_VERSION,
        "model_state": payload.model_state,
        "optimizer_state": payload.optimizer_state,
        "config": payload.config.to_json(),
        "epoch": payload.epoch,
        "metric": payload.metric,
        "num_classes": payload.num_classes,
        "input_shape": list(payload.input_shape),
        "train_size": payload.train_size,
        "mean": payload.mean,
        "std": payload.std,
    }
    atomic_torch_save(path, data)


def atomic_torch_save(path: Path, data: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside *path*, flushed to disk, then renamed over
    it (``os.replace`` is atomic): a reader, or a process killed mid-write, never leaves or
    sees half a file. The temporary name is per process, so two writers never share one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        torch.save(data, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`trainer.train` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
        config = RunConfig.model_validate(data["config"])
        c, h, w = data["input_shape"]
        return Checkpoint(
            model_state=data["model_state"],
            optimizer_state=data["optimizer_state"],
            config=config,
            epoch=int(data["epoch"]),
            metric={k: float(v) for k, v in data["metric"].items()},
            num_classes=int(data["num_classes"]),
            input_shape=(int(c), int(h), int(w)),
            train_size=int(data["train_size"]),
            mean=[float(v) for v in data["mean"]],
            std=[float(v) for v in data["std"]],
        )
    except (ValidationError, KeyError, TypeError, ValueError) as e:
        raise TrainerError(f"{path} is not a sweepdoc checkpoint: {e}") from e
    except Exception as e:  # torch.load's unpickling errors have no common base class
        raise TrainerError(f"cannot read checkpoint {path}: {e}") from e


def resolve_init_from(
    config: RunConfig, data: BatchSource
) -> tuple[RunConfig, Checkpoint, FinetuneStrategy, str]:
    """Load ``init_from``; the architecture comes from the checkpoint (its weights fix it)."""
    assert config.optim.init_from is not None
    ckpt = load_checkpoint(config.optim.init_from)
    if ckpt.input_shape[0] != data.input_shape[0]:
        raise ConfigError(
            f"init_from={config.optim.init_from}: the checkpoint expects "
            f"{ckpt.input_shape[0]}-channel images, dataset {config.data.dataset!r} has "
            f"{data.input_shape[0]}"
        )
    strategy = config.optim.finetune
    note = f"{strategy.value} (requested)"
    if strategy is FinetuneStrategy.AUTO:
        similar = datasets_similar(ckpt.config.data.dataset, config.data.dataset)
        advice = recommend_finetune(train_size=data.train_size, similar=similar)
        strategy = advice.strategy
        note = f"{strategy.value} (auto: {advice.advice})"
    resolved = config.model_copy(update={"model": ckpt.config.model})
    return resolved, ckpt, strategy, note
