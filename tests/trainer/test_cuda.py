"""The CUDA path (bf16 autocast, channels_last, data on the GPU); skipped without a GPU."""

from pathlib import Path

import pytest
import torch

from trainer import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    RunStatus,
    load_checkpoint,
    train,
)

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("arch", ["simple", "vgg", "resnet"])
def test_cuda_run_learns_digits_and_checkpoints(arch: str, tmp_path: Path) -> None:
    config = RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(arch=arch, width=16),
        optim=OptimConfig(lr=0.05, epochs=6, device="cuda"),
    )
    history = train(config, checkpoint_path=tmp_path / "best.pt")
    assert history.status is RunStatus.COMPLETED
    assert history.device.startswith("cuda")
    assert history.best_val_acc is not None and history.best_val_acc > 0.8
    assert all(r.grad_norm > 0 for r in history.records)
    ckpt = load_checkpoint(tmp_path / "best.pt")  # CUDA tensors map to the CPU
    assert all(t.device.type == "cpu" for t in ckpt.model_state.values())


def test_cuda_blow_up_ends_diverged() -> None:
    config = RunConfig(
        model=ModelConfig(width=8), optim=OptimConfig(lr=1e4, epochs=3, device="cuda")
    )
    history = train(config)
    assert history.status is RunStatus.DIVERGED
    assert history.curves()["train_loss"][-1] is None
