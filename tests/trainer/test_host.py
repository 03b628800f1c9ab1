"""A CPU run keeps the memory its steps free for reuse (trainer._host): the same large tensors
allocated and freed again do not page-fault in again each time.

Each probe runs in a fresh interpreter: the setting is process-wide, and this test process
may already have applied it by training."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Six 12 MB tensors made, written and freed, twenty times after a warm-up, in a process whose
# malloc starts out returning freed memory to the OS (glibc's thresholds pinned at their
# initial 128 KiB: its defaults adapt to what the process frees, so whether they trim a given
# pattern varies from run to run, and a test needs the trimming side to be certain).
_PROBE = """
import ctypes, ctypes.util, resource
import torch
mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
assert mallopt(-1, 128 * 1024) and mallopt(-3, 128 * 1024)  # M_TRIM_/M_MMAP_THRESHOLD
{setup}
def round_of_steps():
    tensors = [torch.ones(3 * 1024 * 1024) for _ in range(6)]
    del tensors
for _ in range(3):
    round_of_steps()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    round_of_steps()
print("faults per round:", (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""

_TRAIN_ONE_EPOCH = """
from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train
train(RunConfig(
    data=DataConfig(dataset="digits", train_subset=100),
    model=ModelConfig(arch="simple", width=4),
    optim=OptimConfig(lr=0.05, epochs=1, device="cpu"),
))
"""


def _faults_per_round(setup: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(setup=setup)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return float(result.stdout.rsplit("faults per round:", 1)[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_after_a_cpu_run_freed_tensors_are_reused_not_faulted_in_again() -> None:
    untouched = _faults_per_round("")
    assert untouched > 30  # the probe does show the cost
    assert _faults_per_round(_TRAIN_ONE_EPOCH) < 0.05 * untouched
    applied = "from trainer._host import keep_freed_memory\nassert keep_freed_memory()"
    assert _faults_per_round(applied) < 0.05 * untouched
