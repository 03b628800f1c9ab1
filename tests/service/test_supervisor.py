"""How `serve` plans its local workers: one per visible GPU (or N per GPU), else one on CPU.

The planning is a pure function of the visible devices, so multi-GPU hosts are tested here
without a GPU; ``detect_devices`` (what CUDA shows) is checked against torch itself.
"""

from __future__ import annotations

import os

import pytest
import torch
import typer
from typer.testing import CliRunner

from service.cli import app
from service.commands.serve import parse_worker_count
from service.supervisor import cpu_threads_per_worker, detect_devices, plan_workers

FOUR_GPUS = ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]


def test_detect_devices_lists_every_visible_gpu_else_the_cpu() -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert detect_devices() == ([f"cuda:{i}" for i in range(gpus)] or ["cpu"])


def test_auto_is_one_worker_per_gpu() -> None:
    plans = plan_workers(parse_worker_count("auto"), FOUR_GPUS, prefix="w")

    assert [p.device for p in plans] == FOUR_GPUS
    assert [p.name for p in plans] == ["w-0", "w-1", "w-2", "w-3"]


@pytest.mark.parametrize(("cores", "workers"), [(1, 1), (2, 2), (4, 4), (64, 4)])
def test_auto_without_a_gpu_is_one_worker_per_core_up_to_four_whatever_per_gpu_says(
    monkeypatch: pytest.MonkeyPatch, cores: int, workers: int
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    for per_gpu in (1, 3):
        plans = plan_workers(None, ["cpu"], prefix="w", per_gpu=per_gpu)
        assert [p.device for p in plans] == ["cpu"] * workers
    # Together they use the cores once: each its share as torch threads.
    assert cpu_threads_per_worker(workers) == max(1, cores // workers)


def test_per_gpu_puts_that_many_workers_on_each_gpu() -> None:
    plans = plan_workers(None, ["cuda:0", "cuda:1"], prefix="w", per_gpu=3)

    assert sorted(p.device for p in plans) == ["cuda:0"] * 3 + ["cuda:1"] * 3
    assert len({p.name for p in plans}) == 6
    # Interleaved, so the first workers to start already use every GPU.
    assert [p.device for p in plans[:2]] == ["cuda:0", "cuda:1"]


def test_a_count_spreads_workers_round_robin_and_zero_means_api_only() -> None:
    assert [p.device for p in plan_workers(5, FOUR_GPUS, prefix="w")] == [
        "cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0"
    ]
    assert [p.device for p in plan_workers(3, ["cpu"], prefix="w")] == ["cpu"] * 3
    assert plan_workers(0, [], prefix="w") == []


def test_impossible_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="per_gpu must be at least 1"):
        plan_workers(None, FOUR_GPUS, prefix="w", per_gpu=0)
    with pytest.raises(ValueError, match="no device"):
        plan_workers(2, [], prefix="w")


def test_serve_refuses_workers_per_gpu_with_a_worker_count() -> None:
    result = CliRunner().invoke(app, ["serve", "--workers", "4", "--workers-per-gpu", "2"])
    assert result.exit_code == 2
    assert "--workers-per-gpu" in result.output and "auto" in result.output


@pytest.mark.parametrize("text", ["-1", "many", "1.5"])
def test_bad_worker_counts_are_refused(text: str) -> None:
    with pytest.raises(typer.BadParameter, match="'auto'"):
        parse_worker_count(text)


def test_cpu_workers_share_the_cores_out() -> None:
    cores = os.cpu_count() or 1

    assert cpu_threads_per_worker(1) == cores
    assert cpu_threads_per_worker(cores) == 1
    assert cpu_threads_per_worker(cores * 4) == 1  # never zero threads
