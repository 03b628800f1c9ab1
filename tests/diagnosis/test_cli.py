"""`sweepdoc diagnose FILE [--json]`: readable and machine output, one-line errors (exit 2)."""

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from service.cli import app
from tests.diagnosis import factory


def _write(tmp_path: Path, data: Any, name: str = "curves.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_readable_output_has_label_evidence_and_next_steps(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["diagnose", str(_write(tmp_path, factory.overfitting()))])
    assert result.exit_code == 0, result.output
    assert "OVERFITTING" in result.output
    for part in ("confidence", "evidence", "val_loss_rise_rel", "recommendations"):
        assert part in result.output
    assert "train.weight_decay" in result.output


def test_json_output_is_the_machine_form(tmp_path: Path) -> None:
    path = _write(tmp_path, factory.undertrained())
    result = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) >= {"label", "confidence", "evidence", "findings", "recommendations"}
    assert data["label"] == "undertrained"


def test_a_list_is_diagnosed_in_order(tmp_path: Path) -> None:
    runs = [factory.healthy(), factory.collapsed(), factory.undertrained()]
    path = _write(tmp_path, runs)
    result = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert [d["label"] for d in json.loads(result.stdout)] == [
        "healthy",
        "diverged",
        "undertrained",
    ]
    readable = CliRunner().invoke(app, ["diagnose", str(path)])
    assert readable.output.index("run 0") < readable.output.index("run 2")


def test_a_real_train_out_file_is_diagnosed(tmp_path: Path) -> None:
    import torch

    from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train

    torch.set_num_threads(1)
    config = RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(width=8),
        optim=OptimConfig(lr=10_000.0, epochs=3, device="cpu"),
    )
    history = train(config)
    path = _write(tmp_path, json.dumps(history.to_json()))
    result = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["label"] == "diverged"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ({"train_loss": []}, "train_loss: List should have at least 1 item"),
        ({"train_loss": [1.0, 2.0], "val_loss": [1.0]}, "val_loss has 1"),
        ({"val_acc": [0.5, 1.2, 0.7]}, "val_acc: epoch 2 holds 1.2, outside [0, 1]"),
        ({"train_loss": [1.0, "NaN"]}, "train_loss[1]: Input should be a valid number"),
        ({"train_loss": [1.0] * 100_001}, "train_loss: List should have at most 100000"),
        ([factory.healthy(), {"val_acc": ["x"]}], "item 1: val_acc[0]: Input should be"),
        ("{not json", "not valid JSON"),
        ("[]", "the list is empty"),
        ("42", "expected a curves object, got int"),
    ],
    ids=[
        "empty",
        "unequal",
        "accuracy-range",
        "nan-string",
        "too-long",
        "bad-list-item",
        "not-json",
        "empty-list",
        "not-an-object",
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path: Path, content: Any, expected: str) -> None:
    path = _write(tmp_path, content if isinstance(content, str) else json.dumps(content))
    result = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.output


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["diagnose", str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "nope.json: no such file" in result.stderr


def test_study_context_from_the_command_line(tmp_path: Path) -> None:
    plateau = factory.curves(
        20, lambda e: (0.4 + factory.decay(e), 0.42 + factory.decay(e), 0.91, 0.9), noise=0.002
    )
    path = _write(tmp_path, plateau)
    alone = CliRunner().invoke(app, ["diagnose", str(path), "--json"])
    with_context = CliRunner().invoke(
        app, ["diagnose", str(path), "--json", "--study-best", "0.99"]
    )
    assert json.loads(alone.stdout)["label"] == "healthy"
    assert json.loads(with_context.stdout)["label"] == "underfitting"
    bad = CliRunner().invoke(app, ["diagnose", str(path), "--study-best", "97"])
    assert bad.exit_code == 2
    assert "Traceback" not in bad.output


def test_diagnose_imports_neither_optuna_nor_sqlalchemy_nor_torch(tmp_path: Path) -> None:
    # `sweepdoc diagnose` must answer in about a second on any laptop: the command and the
    # diagnoser it calls import none of the service's heavy dependencies (checked in a fresh
    # interpreter, where nothing else has imported them yet).
    path = _write(tmp_path, factory.undertrained())
    # Through the real entry point (`sweepdoc` is service.cli:main), which must import only the
    # command it runs: importing every command module pulls all of these in.
    code = (
        "import sys\n"
        f"sys.argv = ['sweepdoc', 'diagnose', {str(path)!r}, '--json']\n"
        "from service.cli import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "heavy = ('torch', 'optuna', 'sqlalchemy', 'sklearn', 'matplotlib', 'fastapi')\n"
        "print(sorted(m for m in heavy if m in sys.modules), file=sys.stderr)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["label"] == "undertrained"
    assert out.stderr.strip().splitlines()[-1] == "[]"


def test_the_forecast_is_in_both_outputs(tmp_path: Path) -> None:
    path = _write(tmp_path, factory.undertrained())
    data = json.loads(CliRunner().invoke(app, ["diagnose", str(path), "--json"]).stdout)
    assert data["forecast"]["horizon_epochs"] == 20
    readable = CliRunner().invoke(app, ["diagnose", str(path), "--horizon", "30"]).output
    assert "forecast" in readable and "by epoch 30" in readable


def test_the_readable_forecast_gives_the_probability_the_verdict_reads(tmp_path: Path) -> None:
    path = _write(tmp_path, factory.undertrained())
    runner = CliRunner()
    forecast = json.loads(runner.invoke(app, ["diagnose", str(path), "--json"]).stdout)["forecast"]
    readable = " ".join(runner.invoke(app, ["diagnose", str(path)]).output.split())
    if forecast["shown_gain_probability"] is not None:
        expected = f"shown by then) = {forecast['shown_gain_probability']:.2f}"
    else:
        expected = f"once it levels off) = {forecast['eventual_gain_probability']:.2f}"
    assert expected in readable
