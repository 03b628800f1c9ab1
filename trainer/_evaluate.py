"""A saved model scored again: a checkpoint loaded and evaluated on its validation split.

``evaluate_checkpoint`` rebuilds the network the checkpoint was saved from, loads its
weights and runs the training loop's own evaluation (``trainer._loop.evaluate``: the same
batches, precision and memory layout), so on a CPU it reproduces the validation accuracy
and loss stored with it exactly (tested, packed trials too). On CUDA, cuDNN may pick
other kernels than during training (``cudnn.benchmark``), so the loss can differ in its
last digits and, rarely, an image near the decision boundary flip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer._checkpoint import Checkpoint, load_checkpoint
from trainer._config import DataConfig, DeviceName
from trainer._data import prepare_data
from trainer._errors import ConfigError
from trainer._loop import CHANNELS_LAST, evaluate, resolve_device, uses_bf16
from trainer._models import build_model


@dataclass(frozen=True)
class Evaluation:
    """A model's scores on a validation split."""

    val_loss: float
    val_acc: float
    val_size: int


def evaluate_checkpoint(
    checkpoint: Checkpoint | Path | str,
    *,
    data: DataConfig | None = None,
    device: DeviceName = "auto",
) -> Evaluation:
    """Score *checkpoint* on the validation split of *data* (default: the data it was
    trained on, same split seed, so the same images; give a copy with another ``data_dir``
    when the files live elsewhere here). Raises ConfigError when the images do not fit the
    network (channel count, class count), TrainerError for an unreadable file."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    config = ckpt.config if data is None else ckpt.config.model_copy(update={"data": data})
    torch_device = resolve_device(device)
    prepared = prepare_data(config.data, torch_device, channels_last=CHANNELS_LAST)
    try:
        if prepared.input_shape != ckpt.input_shape or prepared.num_classes != ckpt.num_classes:
            raise ConfigError(
                f"the checkpoint takes {ckpt.input_shape} images in {ckpt.num_classes} classes, "
                f"dataset {config.data.dataset!r} has {prepared.input_shape} in "
                f"{prepared.num_classes}"
            )
        c, h, w = ckpt.input_shape
        model = build_model(
            config.model,
            in_channels=c,
            image_size=min(h, w),
            num_classes=ckpt.num_classes,
            load_weights_file=False,  # the checkpoint's weights are loaded next
        )
        model.load_state_dict(ckpt.model_state)
        model = model.to(torch_device)
        if CHANNELS_LAST:
            model = model.to(memory_format=torch.channels_last)  # as trained
        criterion = nn.CrossEntropyLoss(label_smoothing=config.optim.label_smoothing)
        val_loss, val_acc, _ = evaluate(
            model,
            prepared,
            criterion,
            torch_device,
            autocast=uses_bf16(config.optim.precision, torch_device),
            # The probe changes nothing but the first batch's size: kept, so the batches
            # (and their floating-point sums) are the training run's own.
            probe_relu=config.model.activation == "relu",
        )
        return Evaluation(val_loss=val_loss, val_acc=val_acc, val_size=prepared.val_size)
    finally:
        prepared.close()
