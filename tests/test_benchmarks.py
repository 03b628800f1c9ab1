"""The benchmark tooling keeps working and docs/benchmarks.md keeps telling the truth.

No timing is asserted here (timings are measured in bench/, never tested): these tests check
that the published tables are the ones the result files give, and that the GPU check, which
only runs when a session is lent a GPU, still runs end to end (on the CPU, at toy sizes).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_benchmark_tables_are_the_ones_the_result_files_give() -> None:
    result = subprocess.run(
        [sys.executable, "bench/report.py", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_gpu_check_runs_every_section_end_to_end_in_smoke_mode(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    result = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--smoke", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True
    assert {name: t["failed"] for name, t in report["sections"].items()} == {
        "train": None, "precision": None, "workers": None, "study": None, "packing": None
    }
    rows = {(r["section"], r["what"]): r["value"] for r in report["rows"]}
    for what in ("trainer (sweepdoc)", "minimal loop"):
        assert rows[("train", what)] > 0
    assert rows[("precision", "trainer bf16")] > 0
    assert rows[("study", "trials complete (study completed)")] == "3/3"
    assert rows[("workers", "2 workers: trials/min")] > 0
    assert rows[("packing", "digits packed: trials/min")] > 0
