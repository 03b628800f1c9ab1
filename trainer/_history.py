"""What a run records: one EpochRecord per epoch, gathered in a History."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from trainer._config import RunConfig

if TYPE_CHECKING:
    from trainer._batches import BatchSource
from trainer._curves import curves_json, finite_or_none


class RunStatus(StrEnum):
    """State of a run. ``running`` is only ever seen by the on-epoch callback."""

    RUNNING = "running"
    COMPLETED = "completed"
    DIVERGED = "diverged"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Stop:
    """Returned by the on-epoch callback to end the run after the current epoch."""

    status: RunStatus = RunStatus.STOPPED
    reason: str = "stopped by the on-epoch callback"
    # The epoch is not this run's to keep: write no files for it (no best checkpoint, no
    # epoch state). A worker whose slot was taken away must not overwrite what the attempt
    # that now owns the trial's paths has written.
    discard_epoch: bool = False

    def __post_init__(self) -> None:
        if self.status is RunStatus.RUNNING:
            raise ValueError("Stop(status=...) must be a final status, got running")


@dataclass(frozen=True)
class EpochRecord:
    """Everything measured in one epoch. Floats may be NaN or ±inf after a blow-up."""

    epoch: int  # 1-based
    train_loss: float  # mean over the epoch's training batches (augmented, train mode)
    train_acc: float  # in [0, 1], same batches
    val_loss: float  # eval mode, no grad
    val_acc: float
    lr: float  # learning rate of the epoch's last step
    seconds: float  # wall time of the epoch (training + evaluation)
    images_per_s: float  # training images per second of training time
    grad_norm: float  # global L2 norm of all gradients, mean over the epoch's steps
    grad_norm_first: float  # same, first convolution only (0 when frozen)
    grad_norm_last: float  # same, the linear head only
    dead_relu_fraction: float | None  # ReLU channels silent on a whole val batch; None w/o ReLU
    # Any loss or gradient norm above NaN/inf: derived from them here (both training loops
    # build records), kept as given when a stored record is read back.
    nonfinite: bool | None = None

    def __post_init__(self) -> None:
        if self.nonfinite is None:
            losses = (self.train_loss, self.val_loss)
            norms = (self.grad_norm, self.grad_norm_first, self.grad_norm_last)
            object.__setattr__(self, "nonfinite", not all(map(math.isfinite, losses + norms)))


@dataclass(frozen=True)
class DataFacts:
    """What a run learned of its dataset (from its ``BatchSource``): stored with its history."""

    num_classes: int
    input_shape: tuple[int, int, int]  # (C, H, W)
    train_size: int
    val_size: int
    mean: list[float]  # per channel, training split only
    std: list[float]

    @classmethod
    def of(cls, data: BatchSource) -> DataFacts:
        """The facts of *data*."""
        return cls(
            num_classes=data.num_classes,
            input_shape=data.input_shape,
            train_size=data.train_size,
            val_size=data.val_size,
            mean=data.mean,
            std=data.std,
        )

    def to_json(self) -> dict[str, Any]:
        """The facts as JSON values (the shape a list)."""
        return asdict(self) | {"input_shape": list(self.input_shape)}


@dataclass
class History:
    """A run's result: the resolved config, the dataset facts and one record per epoch."""

    config: RunConfig
    data: DataFacts
    device: str
    records: list[EpochRecord] = field(default_factory=list)
    status: RunStatus = RunStatus.RUNNING
    stop_reason: str | None = None
    best_epoch: int | None = None
    best_val_acc: float | None = None
    finetune: str | None = None  # strategy applied when config.optim.init_from is set

    @classmethod
    def starting(
        cls, config: RunConfig, data: BatchSource, device: str, *, finetune: str | None = None
    ) -> History:
        """The empty history of a run of *config* on *data* (``train`` and each member of
        ``train_packed`` start from it)."""
        return cls(config=config, data=DataFacts.of(data), device=device, finetune=finetune)

    def add_epoch(self, record: EpochRecord, *, blew_up: bool) -> None:
        """Append *record* (``train`` and ``train_packed`` both close an epoch here): a
        finite val loss with a higher val accuracy makes it the best epoch; a non-finite
        training loss (*blew_up*) or val loss marks the run diverged, with the reason."""
        self.records.append(record)
        improved = self.best_val_acc is None or record.val_acc > self.best_val_acc
        if math.isfinite(record.val_loss) and improved:
            self.best_epoch, self.best_val_acc = record.epoch, record.val_acc
        if blew_up or not math.isfinite(record.val_loss):
            self.status = RunStatus.DIVERGED
            where = "training" if blew_up else "validation"
            self.stop_reason = f"non-finite {where} loss in epoch {record.epoch}"

    def curves(self) -> dict[str, Any]:
        """The curves JSON of docs/architecture.md: one entry per epoch, ``null`` for a
        non-finite value."""
        return curves_json(self.record_dicts(), self.data.num_classes)

    def to_json(self) -> dict[str, Any]:
        """Curves JSON plus the outcome, the config and the dataset facts (JSON-safe)."""
        out = self.curves()
        out.update(
            seconds=[finite_or_none(r.seconds) for r in self.records],
            images_per_s=[finite_or_none(r.images_per_s) for r in self.records],
            nonfinite=[r.nonfinite for r in self.records],
            status=self.status.value,
            stop_reason=self.stop_reason,
            best_epoch=self.best_epoch,
            best_val_acc=finite_or_none(self.best_val_acc),
            config=self.config.to_json(),
            **self.data.to_json(),
            device=self.device,
            finetune=self.finetune,
        )
        return out

    def record_dicts(self) -> list[dict[str, Any]]:
        """The records as plain dicts (floats untouched, may be NaN)."""
        return [asdict(r) for r in self.records]
