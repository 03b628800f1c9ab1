"""How `serve` plans its local workers: one per visible GPU, else one on CPU."""

from __future__ import annotations

import os

import pytest
import torch

from service.commands.serve import parse_worker_count
from service.supervisor import cpu_threads_per_worker, plan_workers


def visible_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def test_auto_is_one_worker_per_gpu_else_one_on_cpu() -> None:
    plans = plan_workers(parse_worker_count("auto"), prefix="w")

    gpus = visible_gpus()
    expected = [f"cuda:{i}" for i in range(gpus)] if gpus else ["cpu"]
    assert [p.device for p in plans] == expected
    assert [p.name for p in plans] == [f"w-{i}" for i in range(len(expected))]


def test_a_count_spreads_workers_round_robin_and_zero_means_api_only() -> None:
    gpus = visible_gpus()
    devices = [f"cuda:{i}" for i in range(gpus)] or ["cpu"]

    assert [p.device for p in plan_workers(5, prefix="w")] == [devices[i % len(devices)]
                                                               for i in range(5)]
    assert plan_workers(0, prefix="w") == []


@pytest.mark.parametrize("text", ["-1", "many", "1.5"])
def test_bad_worker_counts_are_refused(text: str) -> None:
    import typer

    with pytest.raises(typer.BadParameter, match="'auto'"):
        parse_worker_count(text)


def test_cpu_workers_share_the_cores_out() -> None:
    cores = os.cpu_count() or 1

    assert cpu_threads_per_worker(1) == cores
    assert cpu_threads_per_worker(cores) == 1
    assert cpu_threads_per_worker(cores * 4) == 1  # never zero threads
