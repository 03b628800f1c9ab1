"""Best-validation checkpoints and fine-tuning from them (the seed's 2×2 table)."""

from pathlib import Path

import pytest
import torch

from tests.trainer.configs import small_digits_config
from trainer import (
    DataConfig,
    FinetuneStrategy,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainerError,
    load_checkpoint,
    recommend_finetune,
    train,
)
from trainer._errors import ConfigError


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    torch.set_num_threads(1)
    history = train(small_digits_config(epochs=4), checkpoint_path=path)
    assert history.best_epoch is not None
    return path


def test_checkpoint_holds_the_best_epoch_and_loads_weights_only(pretrained: Path) -> None:
    raw = torch.load(pretrained, weights_only=True)  # no pickled classes inside
    assert set(raw) >= {"model_state", "optimizer_state", "config", "epoch", "metric"}
    assert isinstance(raw["config"], dict)
    ckpt = load_checkpoint(pretrained)
    assert ckpt.config == small_digits_config(epochs=4)
    assert 1 <= ckpt.epoch <= 4
    assert 0.0 < ckpt.metric["val_acc"] <= 1.0
    assert ckpt.input_shape == (1, 8, 8) and ckpt.num_classes == 10
    assert "state" in ckpt.optimizer_state and "param_groups" in ckpt.optimizer_state


def test_the_checkpoint_is_the_best_validation_epoch(tmp_path: Path) -> None:
    path = tmp_path / "ckpt.pt"
    history = train(small_digits_config(epochs=4, seed=1), checkpoint_path=path)
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == history.best_epoch
    best = max(r.val_acc for r in history.records)
    assert ckpt.metric["val_acc"] == best == history.best_val_acc


def test_linear_probe_trains_only_a_new_head(pretrained: Path) -> None:
    before = load_checkpoint(pretrained).model_state
    out = pretrained.parent / "probe.pt"
    history = train(
        small_digits_config(init_from=pretrained, finetune="linear-probe", epochs=2),
        checkpoint_path=out,
    )
    after = load_checkpoint(out).model_state
    assert history.finetune is not None and history.finetune.startswith("linear-probe")
    for name, tensor in before.items():
        if name.startswith("features."):
            assert torch.equal(after[name], tensor), name  # frozen, norm statistics included
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert all(r.grad_norm_first == 0.0 for r in history.records)  # no gradient reaches it


def test_full_finetune_trains_every_layer(pretrained: Path) -> None:
    before = load_checkpoint(pretrained).model_state
    out = pretrained.parent / "full.pt"
    history = train(
        small_digits_config(init_from=pretrained, finetune="full", epochs=2), checkpoint_path=out
    )
    after = load_checkpoint(out).model_state
    assert not torch.equal(after["features.0.weight"], before["features.0.weight"])
    # Starting from trained weights, the first epoch is already far above chance.
    assert history.records[0].val_acc > 0.5


def test_auto_picks_the_table_cell_and_the_architecture_comes_from_the_checkpoint(
    pretrained: Path,
) -> None:
    # Run config asks for a vgg, but the checkpoint holds a simple model: its weights win.
    run = small_digits_config(init_from=pretrained, epochs=1).model_copy(
        update={"model": ModelConfig(arch="vgg")}
    )
    history = train(run)
    assert history.config.model == load_checkpoint(pretrained).config.model
    # digits → digits: similar data, 1,437 images = little data → linear probe.
    assert history.finetune is not None and history.finetune.startswith("linear-probe (auto")


def test_incompatible_checkpoints_are_config_errors(tmp_path: Path, pretrained: Path) -> None:
    with pytest.raises(TrainerError, match="does not exist"):
        train(small_digits_config(init_from=tmp_path / "missing.pt"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainerError, match="cannot read checkpoint"):
        load_checkpoint(junk)
    # A checkpoint for 1-channel images cannot start a 3-channel run.
    from tests.trainer.test_datasets import write_cifar

    write_cifar(tmp_path, "cifar10")
    with pytest.raises(ConfigError, match="1-channel"):
        train(
            RunConfig(
                data=DataConfig(dataset="cifar10", data_dir=tmp_path),
                optim=OptimConfig(device="cpu", epochs=1, init_from=pretrained),
            )
        )


@pytest.mark.parametrize(
    ("train_size", "similar", "strategy", "words"),
    [
        (500, True, FinetuneStrategy.LINEAR_PROBE, "linear classifier"),
        (500, False, FinetuneStrategy.FULL, "try another model or collect more data"),
        (50_000, True, FinetuneStrategy.FULL, "fine-tune all layers"),
        (50_000, False, FinetuneStrategy.FULL, "or train from scratch"),
    ],
)
def test_recommend_finetune_follows_the_seed_table(
    train_size: int, similar: bool, strategy: FinetuneStrategy, words: str
) -> None:
    advice = recommend_finetune(train_size=train_size, similar=similar)
    assert advice.strategy is strategy
    assert words in advice.advice
    assert advice.small_data is (train_size < 10_000) and advice.similar is similar


def test_recommend_finetune_validates_its_input() -> None:
    with pytest.raises(ValueError, match="train_size must be >= 1, got train_size=0"):
        recommend_finetune(train_size=0, similar=True)


@pytest.mark.parametrize("strategy", [FinetuneStrategy.FULL, FinetuneStrategy.LINEAR_PROBE])
def test_finetuning_onto_a_task_with_another_class_count(
    pretrained: Path, tmp_path: Path, strategy: FinetuneStrategy
) -> None:
    # The checkpoint's head has 10 outputs (digits); the new task has 3 classes. The model is
    # built as the checkpoint was, its weights loaded, then the head replaced for 3 classes.
    from tests.trainer.test_datasets import write_image_tree

    write_image_tree(tmp_path / "three", {"a": 12, "b": 12, "c": 12}, size=8)
    target = RunConfig(
        data=DataConfig(dataset="imagefolder:three", data_dir=tmp_path, val_fraction=0.25),
        model=ModelConfig(arch="simple", width=8),
        optim=OptimConfig(
            lr=0.05, epochs=2, device="cpu", batch_size=8, init_from=pretrained, finetune=strategy
        ),
    )
    path = tmp_path / "tuned.pt"
    history = train(target, checkpoint_path=path)
    assert history.data.num_classes == 3 and len(history.records) == 2
    assert history.finetune is not None and strategy.value in history.finetune
    tuned = load_checkpoint(path)
    assert tuned.num_classes == 3
    assert tuned.model_state["head.weight"].shape[0] == 3
