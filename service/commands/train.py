"""`sweepdoc train`: one training run, no service, watched live.

Prints one table row per epoch under a progress bar; ``--out`` writes the run's curves
JSON (History.to_json: curves with ``null`` for non-finite values, status, config).
Bad options end with a one-line error and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from service.settings import get_settings
from trainer import (
    DataConfig,
    EpochRecord,
    History,
    ModelConfig,
    OptimConfig,
    RunConfig,
    RunStatus,
    Stop,
    TrainerError,
)

# Config field → the CLI option that sets it, so validation errors name what the user typed.
OPTION_FOR_FIELD = {
    ("data", "dataset"): "--dataset",
    ("data", "val_fraction"): "--val-fraction",
    ("data", "train_subset"): "--train-subset",
    ("data", "label_noise"): "--label-noise",
    ("data", "augment"): "--augment",
    ("data", "image_size"): "--image-size",
    ("data", "split_seed"): "--split-seed",
    ("data", "storage"): "--storage",
    ("model", "arch"): "--model",
    ("model", "width"): "--width",
    ("model", "depth"): "--depth",
    ("model", "stages"): "--stages",
    ("model", "norm"): "--norm",
    ("model", "activation"): "--activation",
    ("model", "dropout"): "--dropout",
    ("optim", "lr"): "--lr",
    ("optim", "epochs"): "--epochs",
    ("optim", "batch_size"): "--batch-size",
    ("optim", "optimizer"): "--optimizer",
    ("optim", "momentum"): "--momentum",
    ("optim", "nesterov"): "--nesterov",
    ("optim", "weight_decay"): "--weight-decay",
    ("optim", "schedule"): "--schedule",
    ("optim", "warmup_epochs"): "--warmup-epochs",
    ("optim", "step_size"): "--step-size",
    ("optim", "step_gamma"): "--step-gamma",
    ("optim", "grad_clip"): "--grad-clip",
    ("optim", "label_smoothing"): "--label-smoothing",
    ("optim", "seed"): "--seed",
    ("optim", "device"): "--device",
    ("optim", "init_from"): "--init-from",
    ("optim", "finetune"): "--finetune",
}


def _defaults(cls: type[BaseModel]) -> dict[str, Any]:
    return {name: field.default for name, field in cls.model_fields.items()}


# The CLI shows the configs' own defaults: one source of truth.
_D, _M, _O = _defaults(DataConfig), _defaults(ModelConfig), _defaults(OptimConfig)

STATUS_STYLE = {
    RunStatus.COMPLETED: "green",
    RunStatus.DIVERGED: "red",
    RunStatus.STOPPED: "yellow",
    RunStatus.RUNNING: "blue",
}

# (header, width): 79 columns in all, so a row fits an 80-column terminal.
_COLUMNS = (
    ("epoch", 5),
    ("train loss", 10),
    ("train acc", 9),
    ("val loss", 8),
    ("val acc", 7),
    ("lr", 7),
    ("grad", 6),
    ("dead", 5),
    ("img/s", 6),
    ("s", 6),
)


def _fmt(value: float | None, spec: str) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return f"[red]{value}[/]"
    return format(value, spec)


def epoch_row(record: EpochRecord, *, header: bool) -> Table:
    """One epoch as a fixed-width table row (header on the first), so rows line up while
    they are printed one by one above the progress bar."""
    table = Table(show_header=header, box=None, padding=(0, 0, 0, 1), show_edge=False)
    for name, width in _COLUMNS:
        table.add_column(name, width=width, justify="right", no_wrap=True)
    table.add_row(
        str(record.epoch),
        _fmt(record.train_loss, ".4f"),
        _fmt(record.train_acc, ".3f"),
        _fmt(record.val_loss, ".4f"),
        _fmt(record.val_acc, ".3f"),
        _fmt(record.lr, ".1e"),
        _fmt(record.grad_norm, ".3g"),
        _fmt(record.dead_relu_fraction, ".2f"),
        _fmt(record.images_per_s, ".0f"),
        _fmt(record.seconds, ".2f"),
    )
    return table


def _fail(message: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


def _validation_error_with_section(section: str, error: ValidationError) -> str:
    """Pydantic reports locations relative to the sub-model; prefix its section."""
    parts = []
    for item in error.errors():
        field = str(item["loc"][0]) if item["loc"] else ""
        option = OPTION_FOR_FIELD.get((section, field))
        message = str(item["msg"]).removeprefix("Value error, ")
        got = "" if item["type"] == "value_error" else f" (got {item['input']!r})"
        parts.append(f"{option or section}: {message}{got}")
    return "; ".join(parts)


def register(app: typer.Typer) -> None:
    """Add the `train` command to *app*."""

    @app.command("train")
    def train_command(
        dataset: Annotated[
            str,
            typer.Option(
                help="digits | mnist | fashion-mnist | cifar10 | cifar100 | imagefolder:<path> "
                "(paths relative to the data root, SWEEPDOC_DATA_DIR)."
            ),
        ] = str(_D["dataset"]),
        model: Annotated[str, typer.Option(help="simple | vgg | resnet")] = str(_M["arch"]),
        lr: Annotated[str, typer.Option(metavar="FLOAT", help="Peak learning rate.")] = str(
            _O["lr"]
        ),
        epochs: Annotated[str, typer.Option(metavar="INT")] = str(_O["epochs"]),
        batch_size: Annotated[str, typer.Option(metavar="INT")] = str(_O["batch_size"]),
        optimizer: Annotated[str, typer.Option(help="sgd | adam | adamw")] = str(_O["optimizer"]),
        momentum: Annotated[str, typer.Option(metavar="FLOAT", help="sgd only.")] = str(
            _O["momentum"]
        ),
        nesterov: Annotated[bool, typer.Option(help="sgd only.")] = bool(_O["nesterov"]),
        weight_decay: Annotated[str, typer.Option(metavar="FLOAT")] = str(_O["weight_decay"]),
        schedule: Annotated[str, typer.Option(help="none | cosine | step")] = str(_O["schedule"]),
        warmup_epochs: Annotated[str, typer.Option(metavar="FLOAT")] = str(_O["warmup_epochs"]),
        step_size: Annotated[
            str, typer.Option(metavar="INT", help="step: epochs per decay.")
        ] = str(_O["step_size"]),
        step_gamma: Annotated[str, typer.Option(metavar="FLOAT", help="step: decay factor.")] = str(
            _O["step_gamma"]
        ),
        grad_clip: Annotated[
            str | None, typer.Option(metavar="FLOAT", help="Max global grad norm.")
        ] = None,
        label_smoothing: Annotated[str, typer.Option(metavar="FLOAT")] = str(_O["label_smoothing"]),
        seed: Annotated[str, typer.Option(metavar="INT")] = str(_O["seed"]),
        device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = str(_O["device"]),
        width: Annotated[
            str, typer.Option(metavar="INT", help="Channels of the first stage.")
        ] = str(_M["width"]),
        depth: Annotated[
            str,
            typer.Option(
                metavar="INT", help="Convs (simple, vgg) or blocks (resnet) per stage; 0 = default."
            ),
        ] = str(_M["depth"]),
        stages: Annotated[str, typer.Option(metavar="INT")] = str(_M["stages"]),
        norm: Annotated[str, typer.Option(help="batch | layer | none")] = str(_M["norm"]),
        activation: Annotated[
            str, typer.Option(help="relu | gelu | sigmoid | tanh | leaky_relu")
        ] = str(_M["activation"]),
        dropout: Annotated[str, typer.Option(metavar="FLOAT", help="Drop probability.")] = str(
            _M["dropout"]
        ),
        val_fraction: Annotated[str, typer.Option(metavar="FLOAT")] = str(_D["val_fraction"]),
        train_subset: Annotated[
            str | None,
            typer.Option(metavar="INT", help="Keep only N training images (stratified)."),
        ] = None,
        label_noise: Annotated[
            str, typer.Option(metavar="FLOAT", help="Fraction of training labels replaced.")
        ] = str(_D["label_noise"]),
        augment: Annotated[str, typer.Option(help="auto | none | crop | crop+flip")] = _D[
            "augment"
        ],
        image_size: Annotated[
            str | None, typer.Option(metavar="INT", help="imagefolder: resize to.")
        ] = None,
        split_seed: Annotated[str, typer.Option(metavar="INT")] = str(_D["split_seed"]),
        storage: Annotated[str, typer.Option(help="imagefolder: auto | memory | stream")] = _D[
            "storage"
        ],
        download: Annotated[
            bool, typer.Option("--download", help="Let torchvision download missing files.")
        ] = False,
        init_from: Annotated[
            Path | None, typer.Option(help="Start from this checkpoint (fine-tuning).")
        ] = None,
        finetune: Annotated[str, typer.Option(help="auto | full | linear-probe")] = "auto",
        checkpoint: Annotated[
            Path | None, typer.Option(help="Write the best-validation checkpoint here.")
        ] = None,
        out: Annotated[Path | None, typer.Option(help="Write the curves JSON here.")] = None,
        threads: Annotated[
            str | None, typer.Option(metavar="INT", help="CPU threads for torch.")
        ] = None,
    ) -> None:
        """Train one CNN and show each epoch; --out FILE writes its curves JSON."""
        raw: dict[str, dict[str, Any]] = {
            "data": {
                "dataset": dataset,
                "data_dir": get_settings().resolved_data_dir,
                "download": download,
                "val_fraction": val_fraction,
                "train_subset": train_subset,
                "label_noise": label_noise,
                "augment": augment,
                "image_size": image_size,
                "split_seed": split_seed,
                "storage": storage,
            },
            "model": {
                "arch": model,
                "width": width,
                "depth": depth,
                "stages": stages,
                "norm": norm,
                "activation": activation,
                "dropout": dropout,
            },
            "optim": {
                "lr": lr,
                "epochs": epochs,
                "batch_size": batch_size,
                "optimizer": optimizer,
                "momentum": momentum,
                "nesterov": nesterov,
                "weight_decay": weight_decay,
                "schedule": schedule,
                "warmup_epochs": warmup_epochs,
                "step_size": step_size,
                "step_gamma": step_gamma,
                "grad_clip": grad_clip,
                "label_smoothing": label_smoothing,
                "seed": seed,
                "device": device,
                "init_from": init_from,
                "finetune": finetune,
            },
        }
        config = _config_or_exit(raw)
        if threads is not None:
            if not threads.isdigit() or int(threads) < 1:
                raise _fail(f"--threads: must be a whole number >= 1 (got {threads!r})")
            import torch  # the command's heavy imports wait until it runs

            torch.set_num_threads(int(threads))
        history = _run_with_display(config, checkpoint)
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(history.to_json(), indent=2, allow_nan=False) + "\n")
            Console().print(f"curves written to {out}", highlight=False)


def _config_or_exit(raw: dict[str, dict[str, Any]]) -> RunConfig:
    sections = {k: {f: v for f, v in fields.items() if v is not None} for k, fields in raw.items()}
    built: dict[str, Any] = {}
    problems: list[str] = []
    for name, cls in (("data", DataConfig), ("model", ModelConfig), ("optim", OptimConfig)):
        try:
            built[name] = cls.model_validate(sections[name])
        except ValidationError as e:
            problems.append(_validation_error_with_section(name, e))
    if problems:
        raise _fail("; ".join(problems))
    return RunConfig(**built)


def _run_with_display(config: RunConfig, checkpoint: Path | None) -> History:
    console = Console()
    progress = Progress(
        TextColumn("[bold]epochs"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=console,
        disable=not console.is_terminal,
    )
    task = progress.add_task("", total=config.optim.epochs)

    def on_epoch(record: EpochRecord, history: History) -> Stop | None:
        progress.console.print(epoch_row(record, header=record.epoch == 1))
        best = history.best_val_acc
        progress.update(
            task,
            completed=record.epoch,
            description=f"best val acc {best:.3f}" if best is not None else "",
        )
        return None

    from trainer import train  # loads torch: only when a training actually runs

    started = time.perf_counter()
    try:
        with progress:
            history = train(config, on_epoch=on_epoch, checkpoint_path=checkpoint)
    except TrainerError as e:
        raise _fail(str(e)) from None
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted", highlight=False)
        raise typer.Exit(130) from None
    _print_summary(console, history, time.perf_counter() - started, checkpoint)
    return history


def _print_summary(
    console: Console, history: History, seconds: float, checkpoint: Path | None
) -> None:
    style = STATUS_STYLE[history.status]
    facts = [
        f"[{style}]{history.status.value}[/]",
        f"{history.config.data.dataset} ({history.train_size} train / {history.val_size} val)",
        f"{history.config.model.arch} on {history.device}",
        f"{seconds:.1f} s",
    ]
    if history.best_epoch is not None and history.best_val_acc is not None:
        facts.append(f"best val acc {history.best_val_acc:.4f} at epoch {history.best_epoch}")
    console.print(" · ".join(facts), highlight=False)
    if history.stop_reason:
        console.print(f"reason: {history.stop_reason}", highlight=False)
    if history.finetune:
        console.print(f"fine-tuning: {history.finetune}", highlight=False)
    if checkpoint is not None and history.best_epoch is not None:
        console.print(f"best checkpoint: {checkpoint}", highlight=False)
