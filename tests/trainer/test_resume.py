"""Epoch states: a run stopped after epoch k and resumed from its state ends with exactly
the curves of the same run never stopped (CPU, one thread), for batch-norm models with
dropout and augmentation, SGD with momentum and Adam, step and cosine schedules."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainer import (
    ConfigError,
    DataConfig,
    EpochRecord,
    History,
    ModelConfig,
    OptimConfig,
    ResumeState,
    RunConfig,
    RunStatus,
    Stop,
    TrainerError,
    load_resume_state,
    train,
)

EPOCHS = 4


def _config(**optim: object) -> RunConfig:
    return RunConfig(
        # crop+flip: both augmentation draws (offsets and flips) come from the run's generator.
        data=DataConfig(dataset="digits", train_subset=400, augment="crop+flip"),
        model=ModelConfig(arch="simple", width=6, norm="batch", dropout=0.3),
        optim=OptimConfig.model_validate(
            {"lr": 0.05, "epochs": EPOCHS, "batch_size": 32, "device": "cpu", "seed": 7, **optim}
        ),
    )


def _stop_after(epoch: int) -> Callable[[EpochRecord, History], Stop | None]:
    def on_epoch(record: EpochRecord, _history: History) -> Stop | None:
        return Stop(reason="interrupted") if record.epoch == epoch else None

    return on_epoch


def _interrupted_then_resumed(
    config: RunConfig, state_path: Path, stop_after: int
) -> tuple[History, list[int]]:
    """Run *config* until *stop_after*, then resume it from its epoch state; return the
    resumed history and the epochs its on_epoch callback saw."""
    first = train(config, on_epoch=_stop_after(stop_after), epoch_state_path=state_path)
    assert first.status is RunStatus.STOPPED and len(first.records) == stop_after
    state = load_resume_state(state_path)
    assert state.epoch == stop_after
    seen: list[int] = []

    def watch(record: EpochRecord, history: History) -> None:
        seen.append(record.epoch)
        # The history handed to the callback holds the earlier epochs too.
        assert [r.epoch for r in history.records] == list(range(1, record.epoch + 1))

    resumed = train(config, on_epoch=watch, resume_from=state, epoch_state_path=state_path)
    return resumed, seen


@pytest.mark.parametrize(
    "optim",
    [
        pytest.param(
            {
                "optimizer": "sgd",
                "momentum": 0.9,
                "schedule": "step",
                "step_size": 1,
                "step_gamma": 0.5,
            },
            id="sgd-momentum-step",
        ),
        pytest.param(
            {"optimizer": "adam", "lr": 0.003, "schedule": "cosine", "warmup_epochs": 1},
            id="adam-cosine-warmup",
        ),
        pytest.param(
            {
                "optimizer": "sgd",
                "momentum": 0.9,
                "nesterov": True,
                "schedule": "cosine",
                "weight_decay": 0.0005,
            },
            id="sgd-nesterov-cosine",
        ),
    ],
)
def test_a_resumed_run_has_exactly_the_curves_of_an_uninterrupted_one(
    tmp_path: Path, optim: dict[str, object]
) -> None:
    config = _config(**optim)
    straight = train(config)
    resumed, seen = _interrupted_then_resumed(config, tmp_path / "state.pt", stop_after=2)
    assert seen == [3, 4]  # only the new epochs reach the callback
    assert resumed.status is RunStatus.COMPLETED
    assert [r.epoch for r in resumed.records] == [1, 2, 3, 4]
    assert resumed.curves() == straight.curves()  # exact: every float bit for bit
    assert (resumed.best_epoch, resumed.best_val_acc) == (
        straight.best_epoch,
        straight.best_val_acc,
    )
    # The state after the last epoch is on disk, and nothing half-written is left beside it.
    assert load_resume_state(tmp_path / "state.pt").epoch == EPOCHS
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def _without(state: ResumeState, part: str) -> ResumeState:
    """*state* with one part replaced by what a fresh run would have."""
    fresh_rng = torch.Generator().manual_seed(123).get_state()
    if part == "step":
        return dataclasses.replace(state, step=0)  # the schedule restarts
    if part == "cpu_rng":
        return dataclasses.replace(state, cpu_rng=fresh_rng)  # other dropout masks
    if part == "generator_state":  # another data order and augmentation
        return dataclasses.replace(state, generator_state=fresh_rng)
    assert part == "optimizer_state"  # the momentum buffers lost
    return dataclasses.replace(state, optimizer_state={**state.optimizer_state, "state": {}})


@pytest.mark.parametrize("part", ["step", "cpu_rng", "generator_state", "optimizer_state"])
def test_every_part_of_the_state_is_needed_for_the_same_curves(tmp_path: Path, part: str) -> None:
    # The exactness above is not luck: a state missing any one part continues differently.
    config = _config(optimizer="sgd", momentum=0.9, schedule="cosine")
    train(config, on_epoch=_stop_after(2), epoch_state_path=tmp_path / "state.pt")
    state = load_resume_state(tmp_path / "state.pt")
    complete = train(config, resume_from=state).curves()
    partial = train(config, resume_from=_without(state, part)).curves()
    assert complete["train_loss"][:2] == partial["train_loss"][:2]  # the saved epochs
    assert complete["train_loss"][2:] != partial["train_loss"][2:]


def test_resuming_after_the_last_epoch_trains_nothing_and_completes(tmp_path: Path) -> None:
    config = _config(epochs=2)
    straight = train(config, epoch_state_path=tmp_path / "state.pt")
    calls: list[int] = []
    again = train(
        config,
        on_epoch=lambda r, _h: calls.append(r.epoch),
        resume_from=load_resume_state(tmp_path / "state.pt"),
    )
    assert calls == [] and again.status is RunStatus.COMPLETED
    assert again.curves() == straight.curves()


def test_a_diverged_epoch_writes_no_state(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    # Without norm layers, a learning rate warming up to 1000 blows up in epoch 2.
    config = RunConfig(
        data=DataConfig(dataset="digits", train_subset=400),
        model=ModelConfig(width=6, norm="none"),
        optim=OptimConfig(
            lr=1000.0, epochs=6, warmup_epochs=5, momentum=0.9, schedule="none", device="cpu"
        ),
    )
    history = train(config, epoch_state_path=path)
    assert history.status is RunStatus.DIVERGED and len(history.records) >= 2
    # Every epoch before the diverged one left its state; the diverged one did not.
    assert load_resume_state(path).epoch == len(history.records) - 1


def test_a_state_of_another_config_or_device_type_is_refused_by_name(tmp_path: Path) -> None:
    config = _config()
    train(config, on_epoch=_stop_after(1), epoch_state_path=tmp_path / "state.pt")
    state = load_resume_state(tmp_path / "state.pt")
    other_lr = config.model_copy(update={"optim": config.optim.model_copy(update={"lr": 0.01})})
    assert state.mismatch(other_lr, device="cpu") is not None
    with pytest.raises(ConfigError, match=r"resume_from: .*optim\.lr=0\.05 \(saved\) vs 0\.01"):
        train(other_lr, resume_from=state)
    on_gpu = dataclasses.replace(state, generator_device="cuda")
    with pytest.raises(ConfigError, match="written on cuda, this run is on cpu"):
        train(config, resume_from=on_gpu)
    # The CUDA index is not part of the match: any GPU of the same kind may continue it.
    assert on_gpu.mismatch(config, device="cuda:1") is None
    assert state.mismatch(config, device="cpu") is None


def test_files_that_are_not_epoch_states_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="does not exist"):
        load_resume_state(tmp_path / "missing.pt")
    best = tmp_path / "best.pt"
    train(_config(epochs=1), checkpoint_path=best)  # a best checkpoint, not an epoch state
    with pytest.raises(TrainerError, match="is not a sweepdoc epoch state"):
        load_resume_state(best)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(TrainerError, match="cannot read epoch state"):
        load_resume_state(tmp_path / "junk.pt")


def _image_tree(root: Path) -> None:
    rng = np.random.default_rng(0)
    for label, count in (("a", 12), ("b", 12)):
        folder = root / label
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / f"{i}.png")


def test_a_streamed_image_folder_run_with_dropout_resumes_exactly(tmp_path: Path) -> None:
    # Streamed data builds its loaders on the first epoch it runs; drawing their workers'
    # seed from torch's default generator would shift a resumed run's dropout masks.
    _image_tree(tmp_path / "shapes")
    config = RunConfig(
        data=DataConfig(
            dataset="imagefolder:shapes", data_dir=tmp_path, val_fraction=0.25, storage="stream"
        ),
        model=ModelConfig(width=4, dropout=0.5),
        optim=OptimConfig(epochs=3, device="cpu", batch_size=8, lr=0.05),
    )
    straight = train(config)
    resumed, seen = _interrupted_then_resumed(config, tmp_path / "state.pt", stop_after=1)
    assert seen == [2, 3]
    assert resumed.curves() == straight.curves()
    assert torch.get_num_threads() == 1  # the conftest's premise of bit-for-bit equality
