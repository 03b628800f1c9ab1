"""Packed training on CUDA (bf16 autocast, data on the GPU, the finiteness check every 16
steps); skipped without a GPU. Bit-level equality is a CPU property (cuDNN picks
kernels per shape), so here members must learn as well as alone, and stay apart."""

from __future__ import annotations

import pytest
import torch

from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, RunStatus, train, train_packed

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _config(arch: str, lr: float, precision: str = "auto") -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(arch=arch, width=16),
        optim=OptimConfig.model_validate(
            {"lr": lr, "epochs": 6, "device": "cuda", "precision": precision}
        ),
    )


@pytest.mark.parametrize("arch", ["simple", "vgg", "resnet"])
def test_cuda_packed_members_learn_as_alone(arch: str) -> None:
    configs = [_config(arch, lr, precision="fp32") for lr in (0.05, 0.02)]
    packed = train_packed(configs)
    for config, history in zip(configs, packed, strict=True):
        alone = train(config)
        assert history.status is RunStatus.COMPLETED
        assert history.device.startswith("cuda")
        # The first epoch's loss before kernel differences compound, then the outcome.
        assert history.records[0].train_loss == pytest.approx(alone.records[0].train_loss, rel=1e-3)
        assert history.best_val_acc is not None and alone.best_val_acc is not None
        assert history.best_val_acc == pytest.approx(alone.best_val_acc, abs=0.05)
        assert history.best_val_acc > 0.8


def test_cuda_diverging_member_leaves_the_others_learning() -> None:
    configs = [_config("simple", 0.05), _config("simple", 1e6), _config("simple", 0.02)]
    packed = train_packed(configs)
    assert packed[1].status is RunStatus.DIVERGED
    assert len(packed[1].records) == 1
    for index in (0, 2):
        assert packed[index].status is RunStatus.COMPLETED
        best = packed[index].best_val_acc
        assert best is not None and best > 0.8
