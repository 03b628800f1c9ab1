"""`sweepdoc diagnose FILE [--json] [--study-best ACC]`: label runs from their curves.

FILE holds one curves object (docs/architecture.md "Curves JSON"; `sweepdoc train --out`
files work as they are) or a JSON list of them, diagnosed in order; `-` reads stdin. The
default output is for people (label, confidence, evidence, findings, recommendations);
`--json` prints the machine form (one object, or a list in the input's order). Bad input
ends with one line naming the field and the reason, and exit code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from service.styles import LABEL_STYLE
from studies.diagnosis import Curves, Diagnosis, Plan, diagnose_run
from studies.runlogs import (
    CurveMapping,
    LogFormat,
    RunLogError,
    detect_format,
    parse_map,
    read_csv,
    read_tensorboard,
)


class InputError(Exception):
    """Input the diagnoser cannot read; the message is one line for the user."""


def describe_validation_error(error: ValidationError) -> str:
    """The first problem as `field: reason` (e.g. `train_acc: epoch 2 holds 1.5, ...`)."""
    first = error.errors()[0]
    location = ""
    for part in first["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else part)
    reason = first["msg"].removeprefix("Value error, ")
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return f"{location}: {reason}{suffix}" if location else f"{reason}{suffix}"


def _read_text(path: Path) -> str:
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read it ({e})") from None


def _read(path: Path) -> Any:
    text = _read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def load_curves(path: Path) -> tuple[list[Curves], bool]:
    """The curves in *path*, and whether the file held a list."""
    document = _read(path)
    items = document if isinstance(document, list) else [document]
    if not items:
        raise InputError(f"{path}: the list is empty; give at least one curves object")
    curves = []
    for index, item in enumerate(items):
        where = f"item {index}: " if isinstance(document, list) else ""
        if not isinstance(item, dict):
            raise InputError(f"{where}expected a curves object, got {type(item).__name__}")
        try:
            curves.append(Curves.model_validate(item))
        except ValidationError as e:
            raise InputError(where + describe_validation_error(e)) from None
    return curves, isinstance(document, list)


def load_log(
    path: Path, log_format: LogFormat, maps: list[str]
) -> tuple[list[Curves], bool, CurveMapping | None]:
    """The curves in *path* (a curves JSON, a CSV log or a TensorBoard file or folder),
    whether it held a list, and for a log the mapping of its columns or tags to curves."""
    chosen = detect_format(path) if log_format is LogFormat.AUTO else log_format
    if chosen is LogFormat.JSON:
        if maps:
            raise InputError("--map: applies to CSV and TensorBoard logs, not to curves JSON")
        return (*load_curves(path), None)
    try:
        overrides = parse_map(maps)
        if chosen is LogFormat.CSV:
            log = read_csv(_read_text(path), overrides=overrides)
        else:
            log = read_tensorboard(path, overrides=overrides)
    except RunLogError as e:
        raise InputError(str(e)) from None
    return [log.curves], False, log.mapping


def with_plan(curves: list[Curves], plan_json: str) -> list[Curves]:
    """*curves*, each with the plan given as JSON text (--plan)."""
    try:
        plan = Plan.model_validate_json(plan_json)
        return [c.with_plan(plan) for c in curves]
    except ValidationError as e:
        raise InputError("--plan: " + describe_validation_error(e)) from None


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:10])
        return shown + (f", … ({len(value)} in all)" if len(value) > 10 else "")
    return str(value)


def render(console: Console, diagnosis: Diagnosis, title: str | None = None) -> None:
    """Print one diagnosis for people.

    One markup string and one print per diagnosis, with plain aligned evidence lines rather
    than a rich Table: rich's cost is per call and per table cell, and a list of 1,000 runs
    must print in seconds.
    """
    style = LABEL_STYLE.get(diagnosis.label.value, "bold")
    heading = f"[bold {style}]{diagnosis.label.value.upper()}[/]"
    heading += f"  confidence {diagnosis.confidence:.2f}"
    if title:
        heading = f"[bold]{escape(title)}[/]  " + heading
    lines = [heading, escape(diagnosis.summary)]
    forecast = diagnosis.forecast
    if forecast is not None:
        # The probability the verdict was read from: a run with epochs left in its plan by the
        # best epoch it will show, any other by where its curve levels off.
        if forecast.shown_gain_probability is not None:
            when, gain_probability = "shown by then", forecast.shown_gain_probability
        else:
            when, gain_probability = "once it levels off", forecast.eventual_gain_probability
        lines.append(
            f"[bold]forecast[/] {forecast.metric} {forecast.now:.4g} → {forecast.at_horizon:.4g} "
            f"(90%: {forecast.low:.4g}–{forecast.high:.4g}) by epoch {forecast.horizon_epochs}, "
            f"levelling off near {forecast.asymptote:.4g}; P(gain ≥ {forecast.material_gain:.3g}"
            f" {when}) = {gain_probability:.2f}"
        )
    rows = [
        (key, _number(value))
        for key, value in diagnosis.evidence.model_dump(mode="json").items()
        if value is not None and value != [] and key != "metrics"
    ]
    width = max((len(key) for key, _ in rows), default=0)
    lines.append("[bold]evidence[/]")
    lines += [f"  {key:<{width}}  {escape(value)}" for key, value in rows]
    if diagnosis.findings:
        lines.append("[bold]findings[/]")
        lines += [
            f"  • [bold]{finding.kind.value}[/]: {escape(finding.message)}"
            for finding in diagnosis.findings
        ]
    if diagnosis.recommendations:
        lines.append("[bold]recommendations[/]")
        for number, rec in enumerate(diagnosis.recommendations, start=1):
            lines.append(f"  {number}. {escape(rec.action)} — {escape(rec.reason)}")
            if rec.spec_change:
                change = ", ".join(f"{k}: {json.dumps(v)}" for k, v in rec.spec_change.items())
                lines.append(f"     [dim]spec: {escape(change)}[/]")
    console.print("\n".join(lines), highlight=False)


def diagnose(
    file: Annotated[
        Path,
        typer.Argument(
            help="Curves JSON (one object, or a list of them), a CSV log (Keras', Lightning's "
            "CSVLogger) or a TensorBoard event file or folder; - reads stdin.",
            show_default=False,
        ),
    ],
    log_format: Annotated[
        LogFormat,
        typer.Option("--format", help="The file's format; auto guesses from its name."),
    ] = LogFormat.AUTO,
    maps: Annotated[
        list[str] | None,
        typer.Option(
            "--map",
            metavar="CURVE=KEY",
            help="Read CURVE from this CSV column or TensorBoard tag (repeatable), e.g. "
            "--map val_loss=loss/val.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the machine form (JSON).")] = False,
    study_best: Annotated[
        float | None,
        typer.Option(
            "--study-best",
            min=0.0,
            max=1.0,
            help="Best val accuracy of any run of the same study: what the task allows "
            "(sharpens the underfitting verdict).",
        ),
    ] = None,
    horizon: Annotated[
        int | None,
        typer.Option(
            "--horizon",
            min=1,
            help="Epoch the forecast looks at (default: the planned end of a run with epochs "
            "left, else twice the epochs recorded).",
        ),
    ] = None,
    plan: Annotated[
        str | None,
        typer.Option(
            "--plan",
            metavar="JSON",
            help='What the run(s) planned, e.g. \'{"epochs": 60, "schedule": "step", '
            '"step_size": 30}\' or \'{"epochs": 90, "lr": [...]}\' (replaces a plan in the '
            "file): a run with epochs or an LR drop still ahead is judged as unfinished.",
        ),
    ] = None,
) -> None:
    """Label runs from their learning curves: healthy, overfitting, underfitting,
    undertrained or diverged, with the evidence, a forecast and what to do next."""
    try:
        curves, is_list, mapping = load_log(file, log_format, maps or [])
        if plan is not None:
            curves = with_plan(curves, plan)
    except InputError as e:
        Console(stderr=True).print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from None
    diagnoses = [
        diagnose_run(c, study_best_val_acc=study_best, horizon_epochs=horizon) for c in curves
    ]
    if as_json:
        payload = [d.model_dump(mode="json") for d in diagnoses]
        if mapping is not None:  # a log's diagnosis says how it was read, as the API's does
            payload[0]["mapping"] = mapping.model_dump(mode="json")
        print(json.dumps(payload if is_list else payload[0], indent=2))
        return
    console = Console()
    if mapping is not None:
        console.print(escape("\n".join(mapping.lines())) + "\n", highlight=False)
    for index, diagnosis in enumerate(diagnoses):
        if index:
            console.print()
        render(console, diagnosis, f"run {index}" if is_list else None)
