"""`sweepdoc train`: the command's output, its JSON file and its errors."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from service.commands import train as train_command
from service.settings import get_settings


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[typer.Typer]:
    monkeypatch.setenv("SWEEPDOC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SWEEPDOC_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    # The real command, registered on its own app so these tests do not depend on the
    # other subcommands.
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command.train)

    @app.command("noop", hidden=True)
    def noop() -> None:  # a second command keeps typer from collapsing `train` away
        """Nothing."""

    yield app
    get_settings.cache_clear()


FAST = ["--dataset", "digits", "--model", "simple", "--width", "8", "--threads", "1"]


def test_train_prints_each_epoch_and_writes_curves_json(app: typer.Typer, tmp_path: Path) -> None:
    out, ckpt = tmp_path / "run.json", tmp_path / "best.pt"
    result = CliRunner().invoke(
        app,
        [
            "train",
            *FAST,
            "--lr",
            "0.05",
            "--epochs",
            "3",
            "--out",
            str(out),
            "--checkpoint",
            str(ckpt),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "val acc" in result.output
    assert "completed" in result.output
    data = json.loads(out.read_text())
    assert data["status"] == "completed"
    assert len(data["train_loss"]) == len(data["val_acc"]) == 3
    assert data["num_classes"] == 10
    assert data["config"]["optim"]["lr"] == 0.05
    assert data["config"]["model"]["width"] == 8
    assert ckpt.is_file()

    # Fine-tuning from that checkpoint, strategy chosen by the seed's table.
    result = CliRunner().invoke(
        app, ["train", *FAST, "--epochs", "1", "--init-from", str(ckpt), "--finetune", "auto"]
    )
    assert result.exit_code == 0, result.output
    assert "fine-tuning: linear-probe (auto" in result.output


def test_huge_lr_ends_diverged_without_a_traceback(app: typer.Typer, tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    result = CliRunner().invoke(app, ["train", *FAST, "--lr", "10000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "diverged" in result.output
    assert "Traceback" not in result.output
    data = json.loads(out.read_text())  # strict JSON: NaN is written as null
    assert data["status"] == "diverged"
    assert data["train_loss"][-1] is None


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--model", "foo", "--lr", "-1"], ["--model", "--lr"]),
        (["--lr", "abc", "--epochs", "1.5"], ["--lr", "valid number", "--epochs"]),
        (["--threads", "0"], ["--threads"]),
        (["--dataset", "imagenet"], ["--dataset"]),
        (["--norm", "group"], ["--norm"]),
        (["--device", "tpu"], ["--device"]),
        (["--dataset", "mnist"], ["MNIST", "train-images-idx3-ubyte"]),
        (["--dataset", "imagefolder:../../etc"], ["outside the data root"]),
        (["--init-from", "/nonexistent.pt"], ["/nonexistent.pt"]),
    ],
)
def test_bad_options_give_one_line_and_exit_2(
    app: typer.Typer, args: list[str], names: list[str]
) -> None:
    result = CliRunner().invoke(app, ["train", "--epochs", "1", *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    for name in names:
        assert name in lines[0]
