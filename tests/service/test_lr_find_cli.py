"""`sweepdoc lr-find` as a real subprocess: the suggestion printed, the plot written, JSON."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.serve_process import run_cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL_RUN = ("--dataset", "digits", "--width", "8", "--device", "cpu", "--threads", "1")


def test_lr_find_prints_the_suggestion_and_writes_the_plot(tmp_path: Path) -> None:
    plot = tmp_path / "out" / "lr.png"
    result = run_cli(
        "lr-find", *SMALL_RUN, "--steps", "60", "--plot", str(plot),
        timeout_s=300, SWEEPDOC_HOME=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "suggested lr" in result.stdout and "reason: " in result.stdout
    assert "60 of 60 steps, lr 1e-06 → 1" in result.stdout
    assert plot.read_bytes().startswith(PNG_MAGIC)


def test_lr_find_json_is_the_lr_range_shape(tmp_path: Path) -> None:
    result = run_cli(
        "lr-find", *SMALL_RUN, "--steps", "40", "--lr-low", "1e-4", "--lr-high", "2", "--json",
        timeout_s=300, SWEEPDOC_HOME=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lr_range = json.loads(result.stdout)
    assert lr_range["steps"] == len(lr_range["lrs"]) == len(lr_range["losses"]) == 40
    assert lr_range["lr_low"] == 1e-4 and lr_range["lr_high"] == 2.0
    assert 1e-4 <= lr_range["suggestion"] <= 2.0
    assert lr_range["rule"] in ("steepest", "minimum/10")


def test_lr_find_bad_options_name_the_option(tmp_path: Path) -> None:
    result = run_cli(
        "lr-find", "--dataset", "digits", "--lr-low", "1", "--lr-high", "0.1",
        SWEEPDOC_HOME=str(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert "--lr-high: must be above lr_low=1" in result.stderr
    result = run_cli("lr-find", "--dataset", "nope", SWEEPDOC_HOME=str(tmp_path))
    assert result.returncode == 2 and "--dataset" in result.stderr
