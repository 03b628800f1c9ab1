"""Best-validation checkpoints: plain tensors and JSON-able values only, so they load with
``torch.load(weights_only=True)`` (no pickled classes, no code execution on load).

Format 2 adds the class names (what each output index means, for a model taken home);
a format-1 file still loads, its ``class_names`` None. "Best" follows ``BestBy``: the
highest validation accuracy (the default) or the lowest validation loss, as the study's
objective asks; the first epoch wins a tie, as in the run's summary.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import ValidationError

from trainer._config import IMAGEFOLDER_PREFIX, DataConfig, FinetuneStrategy, RunConfig
from trainer._errors import ConfigError, TrainerError
from trainer._finetune import datasets_similar, recommend_finetune
from trainer._history import EpochRecord
from trainer._imagefolder import class_names as folder_class_names

if TYPE_CHECKING:
    from trainer._batches import BatchSource

FORMAT_VERSION = 2  # 2: class_names added; format 1 files still load

# Which epoch a best checkpoint holds: the highest val accuracy or the lowest val loss.
BestBy = Literal["val_acc", "val_loss"]

# Names of the built-in datasets' classes, by label index (torchvision's order).
_DIGITS = [str(d) for d in range(10)]
BUILTIN_CLASS_NAMES: dict[str, list[str]] = {
    "digits": _DIGITS,
    "mnist": _DIGITS,
    "fashion-mnist": [
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ],
    "cifar10": [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ],
}
# CIFAR-100's 100 names ship with the dataset (torchvision reads them from this file).
_CIFAR100_META = ("cifar-100-python", "meta")


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
    class_names: list[str] | None = None  # by output index; None in a format-1 file


def dataset_class_names(data: DataConfig, num_classes: int) -> list[str]:
    """What each of the *num_classes* output indices means for *data*: the built-in
    datasets' names, an image folder's sub-folder names (sorted, as its labels are), else
    the indices themselves ("0", "1", …) when the names cannot be known."""
    names: list[str] | None = BUILTIN_CLASS_NAMES.get(data.dataset)
    root = Path(data.data_dir) if data.data_dir is not None else None
    try:
        if data.dataset == "cifar100" and root is not None:
            # The dataset's own pickle, read as torchvision reads it (trusted like its data).
            with root.joinpath(*_CIFAR100_META).open("rb") as meta:
                names = [str(n) for n in pickle.load(meta, encoding="latin1")["fine_label_names"]]
        elif data.dataset.startswith(IMAGEFOLDER_PREFIX) and root is not None:
            folder = root / data.dataset.removeprefix(IMAGEFOLDER_PREFIX)
            train = folder / "train"
            names = folder_class_names(train if train.is_dir() else folder)
    except (OSError, KeyError, TypeError, pickle.UnpicklingError):
        names = None  # the names are a convenience: the weights are what matters
    if names is None or len(names) != num_classes:
        return [str(i) for i in range(num_classes)]
    return list(names)


def is_best_epoch(records: Sequence[EpochRecord], best_by: BestBy) -> bool:
    """Whether the last of *records* is the best so far by *best_by* (strictly better than
    every earlier epoch with a finite val loss; non-finite epochs are never best)."""
    last, earlier = records[-1], [r for r in records[:-1] if math.isfinite(r.val_loss)]
    if not math.isfinite(last.val_loss):
        return False
    if best_by == "val_acc":
        return all(last.val_acc > r.val_acc for r in earlier)
    return all(last.val_loss < r.val_loss for r in earlier)


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
        "class_names": payload.class_names,
    }
    atomic_torch_save(path, data)


def atomic_torch_save(path: Path, data: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside *path*, then renamed over it (``os.replace``
    is atomic): a reader, or a process killed mid-write, never leaves or sees half a file.
    The temporary name is per process, so two writers never share one.

    Not fsync'd: these files are written every epoch, and what reads them survives a process
    crash with the page cache intact, as the database does (SQLite's ``synchronous=NORMAL``:
    only an OS crash may lose the last writes). After an OS crash an epoch state behind its
    epoch rows, ahead of them or unreadable means a resume from an earlier epoch or a fresh
    start (``studies.resume``); a checkpoint the artifact store keeps is made durable there,
    once, before its key is committed (``studies.checkpoints``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("wb") as handle:
        torch.save(data, handle)
    os.replace(tmp, path)


def load_checkpoint(path: Path | str, *, map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint written by :func:`trainer.train` (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise TrainerError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
        version = int(data.get("format_version", 1))
        if version > FORMAT_VERSION:
            raise TrainerError(
                f"{path} is a format-{version} checkpoint, newer than this sweepdoc reads "
                f"(format {FORMAT_VERSION}); upgrade sweepdoc to load it"
            )
        config = RunConfig.model_validate(data["config"])
        names = data.get("class_names")
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
            class_names=None if names is None else [str(n) for n in names],
        )
    except TrainerError:
        raise
    except (ValidationError, KeyError, TypeError, ValueError) as e:
        raise TrainerError(f"{path} is not a sweepdoc checkpoint: {e}") from e
    except Exception as e:  # torch.load's unpickling errors have no common base class
        raise TrainerError(f"cannot read checkpoint {path}: {e}") from e


def checkpoint_epoch(path: Path) -> int:
    """The epoch a checkpoint file holds, read without loading its tensors (memory-mapped)."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(data["epoch"])
    except (KeyError, TypeError, ValueError) as e:
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


def save_best(
    path: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    config: RunConfig,
    data: BatchSource,
    record: EpochRecord,
) -> None:
    """Write the run's state after *record*'s epoch as its best checkpoint at *path*."""
    save_checkpoint(
        path,
        Checkpoint(
            model_state=model.state_dict(),
            optimizer_state=optimizer.state_dict(),
            config=config,
            epoch=record.epoch,
            metric={"val_acc": record.val_acc, "val_loss": record.val_loss},
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            train_size=data.train_size,
            mean=data.mean,
            std=data.std,
            class_names=dataset_class_names(config.data, data.num_classes),
        ),
    )
