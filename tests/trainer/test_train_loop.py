"""End-to-end runs of the training loop on the bundled digits (seconds each)."""

import json
import math

import pytest
import torch

from tests.trainer.configs import small_digits_config
from trainer import (
    EpochRecord,
    History,
    RunConfig,
    RunStatus,
    Stop,
    train,
)


def test_digits_run_learns_and_records_every_epoch() -> None:
    history = train(small_digits_config(epochs=4))
    assert history.status is RunStatus.COMPLETED
    assert [r.epoch for r in history.records] == [1, 2, 3, 4]
    assert history.records[-1].val_acc > 0.5  # chance is 0.1
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert history.data.num_classes == 10
    assert history.data.input_shape == (1, 8, 8)
    assert history.data.train_size == 1437
    assert history.data.val_size == 360  # 20 % of 1,797, stratified
    for record in history.records:
        assert 0.0 <= record.train_acc <= 1.0 and 0.0 <= record.val_acc <= 1.0
        assert record.grad_norm > 0 and record.grad_norm_first > 0 and record.grad_norm_last > 0
        assert record.dead_relu_fraction is not None and 0.0 <= record.dead_relu_fraction <= 1.0
        assert not record.nonfinite


def test_cpu_runs_are_deterministic_for_a_seed() -> None:
    first = train(small_digits_config(seed=3)).curves()
    second = train(small_digits_config(seed=3)).curves()
    other = train(small_digits_config(seed=4)).curves()
    assert first == second
    assert first != other


def test_huge_learning_rate_ends_diverged_without_raising() -> None:
    history = train(small_digits_config(lr=1e4, epochs=5))
    assert history.status is RunStatus.DIVERGED
    assert history.stop_reason is not None and "non-finite" in history.stop_reason
    assert len(history.records) < 5
    assert history.records[-1].nonfinite
    curves = history.curves()
    assert curves["train_loss"][-1] is None
    json.dumps(history.to_json(), allow_nan=False)  # strict JSON: no NaN leaks out


def test_callback_sees_each_epoch_and_can_stop_the_run() -> None:
    seen: list[tuple[int, int, RunStatus]] = []

    def on_epoch(record: EpochRecord, history: History) -> Stop | None:
        seen.append((record.epoch, len(history.records), history.status))
        return Stop(RunStatus.STOPPED, "pruned") if record.epoch == 2 else None

    history = train(small_digits_config(epochs=5), on_epoch=on_epoch)
    assert seen == [(1, 1, RunStatus.RUNNING), (2, 2, RunStatus.RUNNING)]
    assert history.status is RunStatus.STOPPED
    assert history.stop_reason == "pruned"
    assert len(history.records) == 2


def test_curves_and_json_follow_the_documented_format() -> None:
    history = train(small_digits_config(epochs=2))
    curves = history.curves()
    for key in (
        "train_loss",
        "val_loss",
        "train_acc",
        "val_acc",
        "lr",
        "grad_norm",
        "grad_norm_first",
        "grad_norm_last",
        "dead_relu_fraction",
    ):
        assert len(curves[key]) == 2, key
    assert curves["num_classes"] == 10
    out = json.loads(json.dumps(history.to_json(), allow_nan=False))
    assert out["status"] == "completed"
    assert out["config"]["optim"]["lr"] == 0.05
    assert RunConfig.model_validate(out["config"]) == history.config
    assert out["best_epoch"] in (1, 2)
    assert len(out["mean"]) == len(out["std"]) == 1
    assert math.isfinite(out["best_val_acc"])


def test_stop_refuses_running_as_a_final_status() -> None:
    with pytest.raises(ValueError, match="final status"):
        Stop(RunStatus.RUNNING, "no")


def test_dead_relu_probe_counts_channels_that_never_fire() -> None:
    from torch import nn

    from trainer._health import dead_fraction, dead_relu_probe

    model = nn.Sequential(nn.Conv2d(1, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(16, 2), nn.ReLU())
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([1.0, -1.0, 1.0, -1.0]).view(4, 1, 1, 1))
        model[0].bias.zero_()
        model[3].weight.fill_(-1.0)  # second ReLU never fires on positive input
        model[3].bias.zero_()
    x = torch.rand(8, 1, 2, 2) + 0.1  # positive: channels 1 and 3 of the conv are dead
    with torch.no_grad(), dead_relu_probe(model) as counts:
        model(x)
    assert dead_fraction(counts) == (2 + 2) / (4 + 2)
    with torch.no_grad(), dead_relu_probe(model) as counts:
        model(torch.full((8, 1, 2, 2), float("nan")))
    assert dead_fraction(counts) == 0.0  # NaN is not "dead"
