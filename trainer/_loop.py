"""The training loop: explicit and linear, one code path for CPU and CUDA."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from trainer._batches import BatchSource, batch_bounds, crop_padding
from trainer._checkpoint import BestBy, Checkpoint, is_best_epoch, resolve_init_from, save_best
from trainer._config import FinetuneStrategy, RunConfig
from trainer._data import prepare_data
from trainer._errors import ConfigError
from trainer._health import GradNormMeter, dead_fraction, dead_relu_probe
from trainer._history import EpochRecord, History, RunStatus, Stop
from trainer._host import tune_host
from trainer._models import Network, apply_finetune, build_model
from trainer._resume import ResumeState, capture_state, restore_state, save_resume_state
from trainer._schedule import lr_at

OnEpoch = Callable[[EpochRecord, History], Stop | None]

# Evaluation batch size: no activations are kept for backward, so it can be large.
EVAL_BATCH = 1024
# Images of the first evaluation batch that the dead-ReLU probe looks at.
PROBE_IMAGES = 256
# On CUDA, reading the loss on the host forces a synchronisation; check it every few
# steps there (a blown-up run costs at most this many wasted steps). CPU checks each step.
CUDA_FINITE_CHECK_EVERY = 16
# Feature maps (and the weights' layout) are channels-last (NHWC) on every device: cuDNN's
# fastest kernels want it, and torch's CPU kernels for convolutions, pooling and BatchNorm
# walk one image plane at a time in NCHW — a digits-CNN step at width 16 took 1.6 ms NCHW and
# 1.1 ms NHWC on one thread, 17 against 6.4 ms on 28x28 images (bench: simple, VGG and ResNet,
# widths 16 and 32, 8x8 to 28x28: 1.2-2.6x faster everywhere).
CHANNELS_LAST = True


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when present, else CPU; an unavailable CUDA device is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name!r}: CUDA is not available on this machine")
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name!r}: only {torch.cuda.device_count()} CUDA device(s) present"
            )
    return device


def warm_up() -> None:
    """Load now what the first ``train`` call would otherwise load: importing this module
    brings in torch and the data sources (scikit-learn for digits), and the first optimizer
    ever built imports torch._dynamo (several seconds on a small CPU). A worker calls this
    before it polls the queue, so its first trial starts as fast as its later ones."""
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)


def uses_bf16(precision: str, device: torch.device) -> bool:
    """Whether forward passes run under bf16 autocast: ``auto`` means on CUDA only."""
    if precision == "auto":
        return device.type == "cuda"
    return precision == "bf16"


def _make_optimizer(params: list[nn.Parameter], config: RunConfig) -> torch.optim.Optimizer:
    o = config.optim
    if o.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=o.lr, momentum=o.momentum, nesterov=o.nesterov, weight_decay=o.weight_decay
        )
    if o.optimizer == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)


@torch.no_grad()
def evaluate(
    model: Network,
    data: BatchSource,
    criterion: nn.Module,
    device: torch.device,
    *,
    autocast: bool,
    probe_relu: bool,
) -> tuple[float, float, float | None]:
    """(mean loss, accuracy, dead-ReLU fraction or None) over the val split, eval mode."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    dead: float | None = None
    # With the probe on, the first batch is the probe's sample, then full batches.
    first = PROBE_IMAGES if probe_relu else EVAL_BATCH
    for index, (xb, yb) in enumerate(data.val_batches(first, EVAL_BATCH)):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            if probe_relu and index == 0:
                with dead_relu_probe(model) as counts:
                    logits = model(xb)
                dead = dead_fraction(counts)
            else:
                logits = model(xb)
            loss_sum += criterion(logits.float(), yb) * len(yb)
        correct += (logits.argmax(dim=1) == yb).sum()
        seen += len(yb)
    model.train(was_training)
    n = max(1, seen)
    return float(loss_sum) / n, int(correct) / n, dead


def train(
    config: RunConfig,
    *,
    on_epoch: OnEpoch | None = None,
    checkpoint_path: Path | None = None,
    epoch_state_path: Path | None = None,
    resume_from: ResumeState | None = None,
    best_by: BestBy = "val_acc",
) -> History:
    """Train one CNN as configured and return its history.

    ``on_epoch(record, history)`` runs after every epoch and may return :class:`Stop` to
    end the run. A non-finite loss ends the run at once as ``diverged``; it never
    raises. The best epoch's state is written to ``checkpoint_path``: best by
    ``best_by``, the highest val accuracy (default) or the lowest val loss (a study
    minimizing the loss keeps that epoch), the earlier epoch on a tie.

    ``epoch_state_path``: after every epoch, once ``on_epoch`` has seen it, the run's whole
    state (:class:`ResumeState`) is written there atomically (not after a diverged epoch:
    there is nothing to continue). ``resume_from`` (read with ``load_resume_state``)
    continues such a run after its epoch exactly: the history holds its earlier records,
    ``on_epoch`` sees only the new epochs, and on CPU the curves equal an uninterrupted
    run's. Raises :class:`ConfigError` when it belongs to another config or device type,
    and :class:`ConfigError` / :class:`DatasetError` before training starts.
    """
    o = config.optim
    device = resolve_device(o.device)
    if resume_from is not None and (why := resume_from.mismatch(config, device=str(device))):
        raise ConfigError(f"resume_from: {why}")
    tune_host(device)  # cuDNN autotuning on a GPU; on a CPU, freed memory kept for reuse
    torch.manual_seed(o.seed)  # model init and dropout

    data = prepare_data(config.data, device, channels_last=CHANNELS_LAST)
    try:
        return _train_on(
            config,
            data,
            device,
            on_epoch,
            _Saves(checkpoint_path, epoch_state_path, resume_from, best_by),
        )
    finally:
        data.close()


@dataclass(frozen=True)
class _Saves:
    """What a run writes besides its history, and the state it continues from."""

    best_checkpoint: Path | None
    epoch_state: Path | None
    resume_from: ResumeState | None
    best_by: BestBy = "val_acc"  # which epoch best_checkpoint holds


@dataclass
class _Run:
    """The parts of one run the epoch function needs."""

    config: RunConfig
    model: Network
    optimizer: torch.optim.Optimizer
    params: list[nn.Parameter]
    criterion: nn.Module
    meter: GradNormMeter
    generator: torch.Generator
    device: torch.device
    steps_per_epoch: int
    pad: int
    flip: bool
    bf16: bool  # forward passes under bf16 autocast (OptimConfig.precision resolved)
    step: int = 0

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"


def build_network(
    config: RunConfig, data: BatchSource, device: torch.device
) -> tuple[RunConfig, Network, bool, str | None]:
    """The network a run trains, on *device*, as ``train`` builds it (the LR range test
    builds its own the same way): (the config with ``init_from`` resolved, the model,
    whether its backbone is frozen (a linear probe), the fine-tuning note or None)."""
    ckpt: Checkpoint | None = None
    finetune_note: str | None = None
    strategy = FinetuneStrategy.FULL
    if config.optim.init_from is not None:
        config, ckpt, strategy, finetune_note = resolve_init_from(config, data)
    c, h, w = data.input_shape
    # Fine-tuning builds the network the checkpoint was saved from (its class count too), so
    # its weights load as they are; apply_finetune then fits the head to this dataset.
    model = build_model(
        config.model,
        in_channels=c,
        image_size=min(h, w),
        num_classes=data.num_classes if ckpt is None else ckpt.num_classes,
        data_dir=config.data.data_dir,
        load_weights_file=ckpt is None,
    )
    if ckpt is not None:
        model.load_state_dict(ckpt.model_state)
        apply_finetune(model, strategy, data.num_classes)
    model = model.to(device)
    if CHANNELS_LAST:
        model = model.to(memory_format=torch.channels_last)
    frozen_backbone = strategy is FinetuneStrategy.LINEAR_PROBE and ckpt is not None
    return config, model, frozen_backbone, finetune_note


def augmentation(config: RunConfig, data: BatchSource) -> tuple[int, bool]:
    """(crop padding, horizontal flips) of the training batches, from ``data.augment``."""
    augment = config.data.resolved_augment
    _, h, w = data.input_shape
    return (crop_padding(min(h, w)) if augment != "none" else 0), augment == "crop+flip"


def _train_on(
    config: RunConfig,
    data: BatchSource,
    device: torch.device,
    on_epoch: OnEpoch | None,
    saves: _Saves,
) -> History:
    requested = config  # what a resumed run must be given again (init_from resolves it)
    config, model, frozen_backbone, finetune_note = build_network(config, data, device)
    o = config.optim
    pad, flip = augmentation(config, data)
    params = [p for p in model.parameters() if p.requires_grad]
    run = _Run(
        config=config,
        model=model,
        optimizer=_make_optimizer(params, config),
        params=params,
        criterion=nn.CrossEntropyLoss(label_smoothing=o.label_smoothing),
        meter=GradNormMeter(model, device),
        # Data order and augmentation draw from their own seeded stream.
        generator=torch.Generator(device=device).manual_seed(o.seed),
        device=device,
        steps_per_epoch=len(batch_bounds(data.train_size, o.batch_size)),
        pad=pad,
        flip=flip,
        bf16=uses_bf16(o.precision, device),
    )
    probe_relu = config.model.activation == "relu"
    history = History.starting(config, data, str(device), finetune=finetune_note)
    first_epoch = 1
    if saves.resume_from is not None:
        restore_state(
            saves.resume_from,
            model=model,
            optimizer=run.optimizer,
            generator=run.generator,
            device=device,
            history=history,
        )
        run.step, first_epoch = saves.resume_from.step, saves.resume_from.epoch + 1
    for epoch in range(first_epoch, o.epochs + 1):
        start = time.perf_counter()
        model.train()
        if frozen_backbone:
            model.features.eval()  # a linear probe keeps the backbone's norm statistics too
        train_loss, train_acc, seen, lr, blew_up = _train_epoch(run, data)
        train_seconds = time.perf_counter() - start
        val_loss, val_acc, dead = evaluate(
            model, data, run.criterion, device, autocast=run.bf16, probe_relu=probe_relu
        )
        grad_norm, grad_first, grad_last = run.meter.result()
        record = EpochRecord(
            epoch=epoch,
            train_loss=train_loss,
            train_acc=train_acc,
            val_loss=val_loss,
            val_acc=val_acc,
            lr=lr,
            seconds=time.perf_counter() - start,
            images_per_s=seen / train_seconds if train_seconds > 0 else math.inf,
            grad_norm=grad_norm,
            grad_norm_first=grad_first,
            grad_norm_last=grad_last,
            dead_relu_fraction=dead,
        )
        history.add_epoch(record, blew_up=blew_up)
        stop = on_epoch(record, history) if on_epoch is not None else None
        if history.status is RunStatus.DIVERGED:
            return history
        # After on_epoch, as the epoch state: the epoch is recorded before its files are
        # written — unless the callback says the epoch is not this run's to keep (Stop).
        # From the records, restored ones included: a resumed run keeps its best.
        keep = stop is None or not stop.discard_epoch
        best_path = saves.best_checkpoint if keep else None
        if best_path is not None and is_best_epoch(history.records, saves.best_by):
            save_best(
                best_path,
                model=model,
                optimizer=run.optimizer,
                config=run.config,
                data=data,
                record=record,
            )
        if keep and saves.epoch_state is not None:
            state = capture_state(
                config=requested,
                epoch=epoch,
                step=run.step,
                model=model,
                optimizer=run.optimizer,
                generator=run.generator,
                device=device,
                history=history,
            )
            save_resume_state(saves.epoch_state, state)
        if stop is not None:
            history.status, history.stop_reason = stop.status, stop.reason
            return history
    history.status = RunStatus.COMPLETED
    return history


def _train_epoch(run: _Run, data: BatchSource) -> tuple[float, float, int, float, bool]:
    """One pass over the training split: (mean loss, accuracy, images, last lr, blew up).

    Loss and accuracy accumulate on the device; the host reads the loss only every
    ``check_every`` steps, to stop at once when it is no longer finite.
    """
    o = run.config.optim
    check_every = CUDA_FINITE_CHECK_EVERY if run.cuda else 1
    run.meter.reset()
    loss_sum = torch.zeros((), device=run.device)
    correct = torch.zeros((), device=run.device, dtype=torch.long)
    seen, lr = 0, o.lr
    batches = data.train_batches(
        o.batch_size, run.generator, pad=run.pad, flip=run.flip, channels_last=CHANNELS_LAST
    )
    for b, (xb, yb) in enumerate(batches):  # (B, C, H, W), (B,)
        lr = lr_at(run.step, steps_per_epoch=run.steps_per_epoch, cfg=o)
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=run.bf16):
            logits = run.model(xb)  # (B, num_classes)
            loss = run.criterion(logits.float(), yb)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.meter.update()
        if o.grad_clip is not None:
            nn.utils.clip_grad_norm_(run.params, o.grad_clip)
        run.optimizer.step()
        run.step += 1
        seen += len(yb)
        loss_sum += loss.detach() * len(yb)
        correct += (logits.detach().argmax(dim=1) == yb).sum()
        check = (b + 1) % check_every == 0 or b == run.steps_per_epoch - 1
        if check and not math.isfinite(float(loss.detach())):
            return float(loss_sum) / seen, int(correct) / seen, seen, lr, True
    if run.cuda:
        torch.cuda.synchronize(run.device)
    n = max(1, seen)
    return float(loss_sum) / n, int(correct) / n, seen, lr, False
