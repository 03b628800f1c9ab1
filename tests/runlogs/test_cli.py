"""`sweepdoc diagnose` on CSV and TensorBoard logs: the mapping printed (or in the JSON), --map
and --format, one-line errors (exit 2), and no heavy import for a CSV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.runlogs import logs


def _csv(tmp_path: Path, text: str, name: str = "metrics.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_lightning_csv_prints_which_column_became_which_curve(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["diagnose", str(_csv(tmp_path, logs.LIGHTNING_CSV))])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "read as csv, 3 epochs:"
    assert "  train_loss <- train_loss_epoch  (one value per epoch)" in lines
    assert any(line.startswith("  train_loss_step: superseded") for line in lines)
    assert "confidence" in result.stdout


def test_a_tensorboard_folder_with_map_in_json(tmp_path: Path) -> None:
    folder = logs.torch_tutorial_run(tmp_path / "run")
    result = CliRunner().invoke(
        app, ["diagnose", str(folder), "--map", "val_acc=Accuracy/val", "--json"]
    )

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["label"]
    chosen = {m["curve"]: (m["source"], m["chosen_by"]) for m in data["mapping"]["mapped"]}
    assert chosen["val_acc"] == ("Accuracy/val", "map")
    assert chosen["train_loss"] == ("Loss/train", "name")


def test_format_csv_reads_any_name_and_stdin(tmp_path: Path) -> None:
    path = _csv(tmp_path, logs.KERAS_CSV, name="history.log")
    from_file = CliRunner().invoke(app, ["diagnose", str(path), "--format", "csv", "--json"])
    from_stdin = CliRunner().invoke(
        app, ["diagnose", "-", "--format", "csv", "--json"], input=logs.KERAS_CSV
    )
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.stdout) == json.loads(from_stdin.stdout)
    assert json.loads(from_file.stdout)["evidence"]["epochs"] == 4


@pytest.mark.parametrize(
    ("text", "args", "expected"),
    [
        ("epoch,loss,val_accuracy\n0,1.0,55\n", [], "error: val_accuracy: (as val_acc) epoch 1 "
         "holds 55.0, outside [0, 1] (give fractions, not percentages)"),
        ("epoch,loss\n0,1.0\n", ["--map", "val_loss"], "error: map: 'val_loss' is not CURVE=KEY"),
        ("epoch,loss\n0,1.0\n", ["--map", "val_loss=nope"], "error: map.val_loss: the log has no"),
        ('{"train_loss": [1.0]}', ["--map", "val_loss=x"], "error: --map: applies to CSV"),
    ],
    ids=["percent", "map-without-key", "map-unknown-column", "map-with-json"],
)
def test_bad_logs_and_maps_are_one_line_and_exit_code_2(
    tmp_path: Path, text: str, args: list[str], expected: str
) -> None:
    name = "curves.json" if text.startswith("{") else "metrics.csv"
    result = CliRunner().invoke(app, ["diagnose", str(_csv(tmp_path, text, name)), *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(expected), line


def _modules_after_diagnose(path: Path) -> list[str]:
    code = (
        "import sys, typer\n"
        "from service.commands.diagnose import diagnose\n"
        "app = typer.Typer()\n"
        "app.command()(diagnose)\n"
        f"app([{str(path)!r}, '--json'], standalone_mode=False)\n"
        "heavy = ('tensorboard', 'google.protobuf')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["mapping"]["mapped"]
    loaded: list[str] = json.loads(out.stderr.strip().splitlines()[-1].replace("'", '"'))
    return loaded


def test_tensorboard_is_loaded_only_to_read_an_event_file(tmp_path: Path) -> None:
    # TensorBoard's reader and protobuf cost a CSV or JSON diagnosis nothing. (That the command
    # loads no torch, optuna or database is tests/diagnosis/test_cli.py's check.)
    assert _modules_after_diagnose(_csv(tmp_path, logs.KERAS_CSV)) == []
    folder = logs.torch_tutorial_run(tmp_path / "run")
    assert _modules_after_diagnose(folder) == ["google.protobuf", "tensorboard"]
