"""LR schedule segments: abrupt changes cut the run, smooth schedules do not."""

import math

import pytest

from studies.diagnosis._schedule import find_schedule


def _cosine(epochs: int, peak: float = 0.1) -> list[float]:
    return [peak * (1 + math.cos(math.pi * e / epochs)) / 2 for e in range(epochs + 1)]


@pytest.mark.parametrize(
    ("lr", "changes", "warmup_end", "annealed"),
    [
        ([0.1] * 20, (), 0, False),
        (_cosine(30), (), 0, True),  # even its large end ratios grow gradually; ends at 0
        ([0.9**e for e in range(30)], (), 0, True),  # exponential decay, to 5% of its peak
        ([0.1] * 10 + [0.01] * 10 + [0.001] * 10, (10, 20), 0, True),  # step decay ×0.1
        ([0.1] * 10 + [0.05] * 10, (10,), 0, False),  # a gentler step (×0.5)
        ([0.0, 0.025, 0.05, 0.075, 0.1, 0.1, 0.1, 0.1], (), 4, False),  # warm-up from 0
        ([0.02, 0.04, 0.06, 0.08, 0.1, *_cosine(20)[1:]], (), 4, True),  # warm-up + cosine
        (_cosine(10)[:-1] * 3, (10, 20), 0, True),  # warm restarts, ending at a cycle's foot
    ],
    ids=[
        "constant",
        "cosine",
        "exponential",
        "step",
        "half-step",
        "warmup",
        "warmup-cosine",
        "restarts",
    ],
)
def test_segments(
    lr: list[float | None], changes: tuple[int, ...], warmup_end: int, annealed: bool
) -> None:
    schedule = find_schedule(lr)
    assert schedule.change_points == changes
    assert schedule.warmup_end == warmup_end
    assert schedule.annealed is annealed
    assert schedule.last_start == max((warmup_end, *changes))


def test_no_lr_or_a_gap_in_it_is_one_segment() -> None:
    assert find_schedule(None).last_start == 0
    assert find_schedule([0.1, None, 0.01]).last_start == 0
