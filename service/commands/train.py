"""`sweepdoc train`: one training run, no service, watched live.

Prints one table row per epoch under a progress bar; ``--out`` writes the run's curves
JSON (History.to_json: curves with ``null`` for non-finite values, status, config).
Bad options end with a one-line error and exit code 2, never a traceback.

Every option that sets a training setting is derived from the trainer's configs
(trainer/_config.py): one option per field, named after it, with the field's default and
description as its default and help; the values go through the configs' own validation, so
the command accepts exactly what a run accepts. Only the data root is not an option (it is
SWEEPDOC_DATA_DIR's, as for every sweepdoc command).
"""

from __future__ import annotations

import inspect
import json
import math
import time
import types
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
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

# The run config's sections, in the order their options are listed.
SECTIONS: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "model": ModelConfig,
    "optim": OptimConfig,
}
# Fields the command fills itself rather than taking as options.
FILLED_BY_THE_CLI = {("data", "data_dir")}
# `--model vgg` reads as what it picks (the README's spelling); every other option is its
# field's name.
_OPTION_NAME = {("model", "arch"): "model"}


@dataclass(frozen=True)
class ConfigOption:
    """One config field as a command-line option."""

    section: str
    field: str
    info: FieldInfo

    @property
    def flag(self) -> str:
        """The option as typed, e.g. ``--batch-size``."""
        name = _OPTION_NAME.get((self.section, self.field), self.field)
        return "--" + name.replace("_", "-")

    @property
    def value_type(self) -> Any:
        """The field's type without ``None``."""
        annotation = self.info.annotation
        if typing.get_origin(annotation) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            (annotation,) = rest
        return annotation


def _config_options() -> list[ConfigOption]:
    options = [
        ConfigOption(section, name, info)
        for section, model in SECTIONS.items()
        # A section's own fields (dataset, lr, ...) before those it inherits from its recipe.
        for name, info in sorted(
            model.model_fields.items(), key=lambda item: item[0] not in vars(model).get(
                "__annotations__", {}
            )
        )
        if (section, name) not in FILLED_BY_THE_CLI
    ]
    # The command's parameters are the field names: they must not collide across sections.
    names = [o.field for o in options]
    assert len(names) == len(set(names)), f"config fields share a name: {sorted(names)}"
    return options


CONFIG_OPTIONS = _config_options()
# Config field → the option that sets it, so validation errors name what the user typed.
OPTION_FOR_FIELD = {(o.section, o.field): o.flag for o in CONFIG_OPTIONS}


def _metavar(kind: Any) -> str:
    if typing.get_origin(kind) is typing.Literal:
        return "|".join(str(v) for v in typing.get_args(kind))
    if isinstance(kind, type) and issubclass(kind, Enum):
        return "|".join(str(v.value) for v in kind)
    return {int: "INT", float: "FLOAT", Path: "PATH"}.get(kind, "TEXT")


def _parameter(option: ConfigOption) -> inspect.Parameter:
    """The typer parameter of *option*: a flag pair for a bool, else a string the config
    validates (so its errors, not click's, name the bound that was crossed)."""
    help_text = option.info.description
    default = option.info.default
    if option.value_type is bool:
        flags = f"{option.flag}/--no-{option.flag.removeprefix('--')}"
        return inspect.Parameter(
            option.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=bool(default),
            annotation=Annotated[bool, typer.Option(flags, help=help_text)],
        )
    shown = default.value if isinstance(default, Enum) else default
    return inspect.Parameter(
        option.field,
        inspect.Parameter.KEYWORD_ONLY,
        default=None if shown is None else str(shown),
        annotation=Annotated[
            str | None,
            typer.Option(option.flag, metavar=_metavar(option.value_type), help=help_text),
        ],
    )


# What the command takes besides the configs' fields.
_RUN_PARAMETERS = [
    inspect.Parameter(
        "checkpoint",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            Path | None, typer.Option(help="Write the best-validation checkpoint here.")
        ],
    ),
    inspect.Parameter(
        "out",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[Path | None, typer.Option(help="Write the curves JSON here.")],
    ),
    inspect.Parameter(
        "threads",
        inspect.Parameter.KEYWORD_ONLY,
        default=None,
        annotation=Annotated[
            str | None, typer.Option(metavar="INT", help="CPU threads for torch.")
        ],
    ),
]


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
    """Pydantic reports locations relative to the section; name the option instead. A
    cross-field rule (empty location) starts its message with the field it blames."""
    parts = []
    for item in error.errors():
        message = str(item["msg"]).removeprefix("Value error, ")
        field = str(item["loc"][0]) if item["loc"] else message.split(":", 1)[0]
        option = OPTION_FOR_FIELD.get((section, field))
        if not item["loc"] and option is not None:
            message = message.split(":", 1)[1].strip()
        got = "" if item["type"] == "value_error" else f" (got {item['input']!r})"
        parts.append(f"{option or section}: {message}{got}")
    return "; ".join(parts)


def configured_run(options: dict[str, Any]) -> RunConfig:
    """The run config from the command's *options* (its ``threads`` popped and applied), or
    a one-line error naming the option: shared by `train` and `lr-find`."""
    threads: str | None = options.pop("threads")
    try:
        config = run_config(options, data_dir=get_settings().resolved_data_dir)
    except ValueError as e:
        raise _fail(str(e)) from None
    if threads is not None:
        if not threads.isdigit() or int(threads) < 1:
            raise _fail(f"--threads: must be a whole number >= 1 (got {threads!r})")
        import torch  # the command's heavy imports wait until it runs

        torch.set_num_threads(int(threads))
    return config


def run_config(values: dict[str, Any], *, data_dir: Path) -> RunConfig:
    """The run config from the options' *values* (by field name; None or absent = the
    config's default), or ValueError naming each bad option and why."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for option in CONFIG_OPTIONS:
        value = values.get(option.field)
        if value is not None:
            sections[option.section][option.field] = value
    sections["data"]["data_dir"] = data_dir
    built: dict[str, BaseModel] = {}
    problems: list[str] = []
    for name, model in SECTIONS.items():
        try:
            built[name] = model.model_validate(sections[name])
        except ValidationError as e:
            problems.append(_validation_error_with_section(name, e))
    if problems:
        raise ValueError("; ".join(problems))
    return RunConfig.model_validate(built)


def train(**options: Any) -> None:
    """Train one CNN and show each epoch; --out FILE writes its curves JSON."""
    checkpoint: Path | None = options.pop("checkpoint")
    out: Path | None = options.pop("out")
    config = configured_run(options)
    history = _run_with_display(config, checkpoint)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(history.to_json(), indent=2, allow_nan=False) + "\n")
        Console().print(f"curves written to {out}", highlight=False)


# typer reads a command's options from its signature, and inspect.signature honours
# __signature__: the options are the configs' fields, then the run's own.
vars(train)["__signature__"] = inspect.Signature(
    [*(_parameter(o) for o in CONFIG_OPTIONS), *_RUN_PARAMETERS]
)


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

    from trainer import train as run_training  # loads torch: only when a run starts

    started = time.perf_counter()
    try:
        with progress:
            history = run_training(config, on_epoch=on_epoch, checkpoint_path=checkpoint)
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
        f"{history.config.data.dataset} "
        f"({history.data.train_size} train / {history.data.val_size} val)",
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
