"""Findings from the health statistics of a REAL training run (the project's trainer)."""

import torch

from studies.diagnosis import Curves, FindingKind, diagnose_run
from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train


def test_a_deep_sigmoid_network_without_normalization_has_vanishing_gradients() -> None:
    torch.set_num_threads(1)
    config = RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(arch="vgg", width=8, depth=3, norm="none", activation="sigmoid"),
        optim=OptimConfig(lr=0.05, epochs=3, device="cpu"),
    )
    curves = Curves.model_validate(train(config).curves())
    diagnosis = diagnose_run(curves)
    kinds = {f.kind for f in diagnosis.findings}
    assert FindingKind.VANISHING_GRADIENTS in kinds
    assert FindingKind.OSCILLATING_LOSS not in kinds
    changes = [r.spec_change for r in diagnosis.recommendations]
    assert {"model.activation": "relu", "model.norm": "batch"} in changes
