"""``OptimConfig.precision``: which forward passes run under bf16 autocast.

CPU has bf16 autocast too, so both settings are exercised here for real; the CUDA default
(auto = bf16) is checked in the gpu-marked test at the end.
"""

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from pydantic import ValidationError
from torch import nn

import trainer._loop as loop
from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, RunStatus, train
from trainer._loop import uses_bf16


def digits_config(precision: str, device: str = "cpu") -> RunConfig:
    return RunConfig(
        data=DataConfig(dataset="digits", train_subset=400),
        model=ModelConfig(arch="simple", width=8),
        optim=OptimConfig.model_validate(
            {"lr": 0.05, "epochs": 2, "device": device, "precision": precision}
        ),
    )


@pytest.fixture
def logits_dtypes(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, set[torch.dtype]]]:
    """The dtypes of the model's output, by phase (train / eval), for every forward pass
    the next ``train()`` makes."""
    seen: dict[str, set[torch.dtype]] = {"train": set(), "eval": set()}
    real_build = loop.build_model

    def record(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        seen["train" if module.training else "eval"].add(output.dtype)

    def build_and_watch(*args: Any, **kwargs: Any) -> Any:
        model = real_build(*args, **kwargs)
        model.register_forward_hook(record)
        return model

    monkeypatch.setattr(loop, "build_model", build_and_watch)
    yield seen


def test_auto_means_bf16_on_cuda_and_fp32_elsewhere() -> None:
    # torch.device("cuda") is only a name: no GPU is needed to resolve the setting.
    assert uses_bf16("auto", torch.device("cuda")) is True
    assert uses_bf16("auto", torch.device("cuda", 1)) is True
    assert uses_bf16("auto", torch.device("cpu")) is False
    assert uses_bf16("fp32", torch.device("cuda")) is False
    assert uses_bf16("bf16", torch.device("cpu")) is True


def test_default_is_auto_and_unknown_precisions_are_refused() -> None:
    assert OptimConfig().precision == "auto"
    with pytest.raises(ValidationError, match="precision"):
        OptimConfig.model_validate({"precision": "fp16"})


def test_cpu_default_trains_in_float32(logits_dtypes: dict[str, set[torch.dtype]]) -> None:
    history = train(digits_config("auto"))
    assert history.status is RunStatus.COMPLETED
    assert logits_dtypes == {"train": {torch.float32}, "eval": {torch.float32}}


def test_bf16_on_cpu_runs_every_forward_pass_in_bfloat16(
    logits_dtypes: dict[str, set[torch.dtype]],
) -> None:
    history = train(digits_config("bf16"))
    assert history.status is RunStatus.COMPLETED
    assert logits_dtypes == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}
    # Still learns (chance is 0.1), with finite losses throughout.
    assert history.records[-1].val_acc > 0.3
    assert all(math.isfinite(r.train_loss) and math.isfinite(r.val_loss) for r in history.records)


def test_bf16_and_fp32_give_different_curves_from_the_same_seed() -> None:
    fp32 = train(digits_config("fp32")).curves()
    bf16 = train(digits_config("bf16")).curves()
    assert fp32["train_loss"] != bf16["train_loss"]
    assert train(digits_config("fp32")).curves() == fp32  # the difference is the precision


def test_precision_is_kept_in_the_resolved_config() -> None:
    history = train(digits_config("bf16"))
    assert history.config.optim.precision == "bf16"
    assert history.config.to_json()["optim"]["precision"] == "bf16"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_auto_is_bf16_and_fp32_turns_it_off(
    logits_dtypes: dict[str, set[torch.dtype]],
) -> None:
    train(digits_config("auto", device="cuda"))
    assert logits_dtypes == {"train": {torch.bfloat16}, "eval": {torch.bfloat16}}
    logits_dtypes["train"].clear()
    logits_dtypes["eval"].clear()
    train(digits_config("fp32", device="cuda"))
    assert logits_dtypes == {"train": {torch.float32}, "eval": {torch.float32}}
