"""The small run the trainer tests build on: the bundled digits, a narrow network, CPU."""

from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig


def small_digits_config(**optim: object) -> RunConfig:
    """Three epochs at lr 0.05 on CPU; *optim* overrides any optimiser field."""
    return RunConfig(
        data=DataConfig(dataset="digits"),
        model=ModelConfig(arch="simple", width=8),
        optim=OptimConfig.model_validate({"lr": 0.05, "epochs": 3, "device": "cpu", **optim}),
    )
