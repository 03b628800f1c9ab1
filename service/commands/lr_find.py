"""`sweepdoc lr-find`: the LR range test on this machine, no server (like `sweepdoc train`).

The run's options are `sweepdoc train`'s (one per training setting, derived from the
trainer's configs in service/commands/train.py); the test's own are the span
(``--lr-low``/``--lr-high``, by default a range test study's: studies.spec), ``--steps``,
``--plot FILE`` (the curve as a PNG, suggestion marked) and ``--json`` (the ``lr_range`` JSON
on stdout instead of the text). Prints the suggested learning rate, the rule that chose it
and why. Exit code 2 for bad options, 1 when no rate can be suggested.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from service.commands.train import CONFIG_OPTIONS, _fail, _parameter, configured_run
from studies.spec._search import MAX_RANGE_STEPS, RANGE_TEST_LR_HIGH, RANGE_TEST_LR_LOW

# The range test's argument → the option that sets it, so its errors name what was typed.
_FLAGS = {"lr_low": "--lr-low", "lr_high": "--lr-high", "max_steps": "--steps"}


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


_RANGE_PARAMETERS = [
    _option(
        "lr_low",
        Annotated[float, typer.Option(help="Learning rate of the first step.")],
        RANGE_TEST_LR_LOW,
    ),
    _option(
        "lr_high",
        Annotated[float, typer.Option(help="Learning rate of the last step.")],
        RANGE_TEST_LR_HIGH,
    ),
    _option(
        "steps",
        Annotated[
            int | None,
            typer.Option(
                help=f"Steps from --lr-low to --lr-high (at most {MAX_RANGE_STEPS}); default "
                "one epoch, at least 100 and at most 300."
            ),
        ],
        None,
    ),
    _option(
        "plot",
        Annotated[Path | None, typer.Option(help="Write the curve here (PNG).")],
        None,
    ),
    _option(
        "json",
        Annotated[bool, typer.Option("--json", help="Print the result as JSON.")],
        False,
    ),
    _option(
        "threads",
        Annotated[str | None, typer.Option(metavar="INT", help="CPU threads for torch.")],
        None,
    ),
]


def lr_find(**options: Any) -> None:
    """LR range test: the loss as the learning rate rises, and a suggested rate."""
    lr_low: float = options.pop("lr_low")
    lr_high: float = options.pop("lr_high")
    steps: int | None = options.pop("steps")
    plot: Path | None = options.pop("plot")
    as_json: bool = options.pop("json")
    if steps is not None and steps > MAX_RANGE_STEPS:
        raise _fail(f"--steps: must be at most {MAX_RANGE_STEPS}, got {steps}")
    config = configured_run(options)
    from trainer import TrainerError, range_test

    try:
        result = range_test(config, lr_low=lr_low, lr_high=lr_high, max_steps=steps)
    except TrainerError as e:
        field, _, reason = str(e).partition(": ")
        raise _fail(f"{_FLAGS[field]}: {reason}" if field in _FLAGS else str(e)) from None
    lr_range = result.to_json()
    console = Console(stderr=as_json)  # with --json, stdout carries the JSON alone
    if plot is not None:
        from studies.plots import lr_range_png

        plot.parent.mkdir(parents=True, exist_ok=True)
        title = f"{config.data.dataset} {config.model.arch}: LR range test"
        plot.write_bytes(lr_range_png(lr_range, title=title))
    if as_json:
        print(json.dumps(lr_range, allow_nan=False))
    else:
        _print_result(console, lr_range)
    if plot is not None:
        console.print(f"plot written to {escape(str(plot))}", highlight=False)
    if lr_range["suggestion"] is None:
        raise typer.Exit(1)


def _print_result(console: Console, lr_range: dict[str, Any]) -> None:
    suggestion = lr_range["suggestion"]
    if suggestion is None:
        console.print("[red]no suggestion[/]", highlight=False)
    else:
        console.print(
            f"suggested lr [bold]{suggestion:.3g}[/] ({lr_range['rule']})", highlight=False
        )
    console.print(f"reason: {escape(lr_range['reason'])}", highlight=False)
    ran = (
        f"{lr_range['steps']} of {lr_range['planned_steps']} steps, "
        f"lr {lr_range['lr_low']:g} → {lr_range['lr_high']:g}"
    )
    if lr_range["stopped_early"]:
        ran += f"; stopped early: {escape(lr_range['stopped_early'])}"
    console.print(ran, highlight=False)


# typer reads the options from the signature (as `sweepdoc train` does): the configs'
# fields, then the range test's own.
vars(lr_find)["__signature__"] = inspect.Signature(
    [*(_parameter(o) for o in CONFIG_OPTIONS), *_RANGE_PARAMETERS]
)
