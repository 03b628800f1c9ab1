"""The learning-rate schedule is a pure function of the step."""

import itertools

import pytest

from trainer import OptimConfig
from trainer._schedule import lr_at


def lrs(steps_per_epoch: int = 10, **fields: object) -> list[float]:
    cfg = OptimConfig.model_validate({"lr": 0.1, "epochs": 5, **fields})
    return [lr_at(s, steps_per_epoch=steps_per_epoch, cfg=cfg) for s in range(50)]


def test_none_is_constant() -> None:
    assert set(lrs(schedule="none")) == {0.1}


def test_cosine_decays_from_lr_towards_zero() -> None:
    values = lrs(schedule="cosine")
    assert values[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[-1] < 0.001
    assert values[25] == pytest.approx(0.05, rel=0.1)


def test_step_multiplies_by_gamma_every_step_size_epochs() -> None:
    values = lrs(schedule="step", step_size=2, step_gamma=0.5)
    assert values[0] == values[19] == pytest.approx(0.1)
    assert values[20] == values[39] == pytest.approx(0.05)
    assert values[40] == pytest.approx(0.025)


def test_warmup_rises_linearly_then_follows_the_schedule() -> None:
    values = lrs(schedule="none", warmup_epochs=1)
    assert values[:10] == pytest.approx([0.01 * (i + 1) for i in range(10)])
    assert values[10:] == pytest.approx([0.1] * 40)
    cosine = lrs(schedule="cosine", warmup_epochs=1)
    assert cosine[9] == pytest.approx(0.1) and cosine[-1] < 0.001
