"""Run logs as the tools write them, for the runlogs tests: Keras' and Lightning's CSVLogger
files (their exact column layout, blanks included) and TensorBoard event files written by the
real writers (PyTorch's SummaryWriter, and TensorBoard's own writer for Keras' tensors)."""

from __future__ import annotations

import time
from pathlib import Path

# Keras' CSVLogger: one row per epoch, `epoch` from 0, its own metric names.
KERAS_CSV = """epoch,accuracy,learning_rate,loss,val_accuracy,val_loss
0,0.62,0.01,1.10,0.70,0.90
1,0.75,0.01,0.80,0.78,0.70
2,0.80,0.01,0.65,0.80,0.62
3,0.84,0.01,0.55,0.82,0.58
"""

# Lightning's CSVLogger metrics.csv for self.log("train_loss", on_step=True, on_epoch=True)
# and self.log("val_loss"/"val_acc") every 2 steps of 4-step epochs: per-step rows, then at
# each epoch's end a validation row and a training epoch-end row, blanks elsewhere.
LIGHTNING_CSV = """epoch,step,train_loss_epoch,train_loss_step,val_acc,val_loss
0,1,,2.0,,
0,3,,1.6,,
0,3,,,0.50,1.40
0,3,1.8,,,
1,5,,1.2,,
1,7,,1.0,,
1,7,,,0.70,1.00
1,7,1.1,,,
2,9,,0.9,,
2,11,,0.7,,
2,11,,,0.80,0.80
2,11,0.8,,,
"""


def torch_tutorial_run(folder: Path, epochs: int = 4) -> Path:
    """PyTorch's tutorial way: `writer.add_scalar("Loss/train", loss, epoch)`."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for epoch in range(epochs):
            writer.add_scalar("Loss/train", 1.0 / (epoch + 1), epoch)
            writer.add_scalar("Loss/val", 1.2 / (epoch + 1), epoch)
            writer.add_scalar("Accuracy/val", 0.5 + 0.1 * epoch, epoch)
    return folder


def per_step_run(folder: Path, epochs: int = 3, steps_per_epoch: int = 4) -> Path:
    """A hand-written loop logging the training loss every step (global step) and the
    validation loss once per epoch, at the epoch's last step."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        for epoch in range(epochs):
            for batch in range(steps_per_epoch):
                step = epoch * steps_per_epoch + batch
                writer.add_scalar("train/loss", 2.0 - 0.1 * step, step)
            writer.add_scalar("val/loss", 2.0 - 0.5 * epoch, (epoch + 1) * steps_per_epoch - 1)
    return folder


def lightning_style_run(folder: Path) -> Path:
    """What Lightning's TensorBoardLogger writes for train_loss (on_step and on_epoch) and
    val_loss: every logging step also logs `epoch`; hp_metric is its placeholder."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(folder)) as writer:
        writer.add_scalar("hp_metric", -1, 0)
        for epoch, (step_losses, val_loss) in enumerate([((2.0, 1.6), 1.4), ((1.2, 1.0), 1.0)]):
            for offset, loss in enumerate(step_losses):
                step = epoch * 4 + 2 * offset + 1
                writer.add_scalar("train_loss_step", loss, step)
                writer.add_scalar("epoch", epoch, step)
            end = epoch * 4 + 3
            writer.add_scalar("val_loss", val_loss, end)
            writer.add_scalar("train_loss_epoch", sum(step_losses) / 2, end)
            writer.add_scalar("epoch", epoch, end)
    return folder


def keras_style_run(folder: Path, epochs: int = 3) -> Path:
    """Keras' TensorBoard callback: train/ and validation/ subfolders, `epoch_*` tags written
    as TensorFlow 2 tensors (the scalars plugin), plus `evaluation_*_vs_iterations`."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    def write(sub: str, tags: dict[str, list[float]]) -> None:
        writer = EventFileWriter(str(folder / sub))
        for tag, values in tags.items():
            for step, value in enumerate(values):
                summary = scalar_pb(tag, value)
                writer.add_event(Event(wall_time=time.time(), step=step, summary=summary))
        writer.close()

    write("train", {
        "epoch_loss": [1.0 / (e + 1) for e in range(epochs)],
        "epoch_accuracy": [0.6 + 0.1 * e for e in range(epochs)],
        "epoch_learning_rate": [0.01] * epochs,
    })
    write("validation", {
        "epoch_loss": [1.1 / (e + 1) for e in range(epochs)],
        "epoch_accuracy": [0.55 + 0.1 * e for e in range(epochs)],
        "evaluation_loss_vs_iterations": [1.1 / (e + 1) for e in range(epochs)],
    })
    return folder


def event_file(folder: Path) -> Path:
    """The one event file in *folder*."""
    (path,) = folder.glob("events.out.tfevents.*")
    return path
