"""sweepdoc's training engine: pure PyTorch, no HTTP, no database, no Optuna.

``train(RunConfig(...), on_epoch=..., checkpoint_path=...) -> History``; see
docs/architecture.md ("trainer") and docs/trainer.md.
"""

from trainer._checkpoint import Checkpoint, load_checkpoint
from trainer._config import DataConfig, FinetuneStrategy, ModelConfig, OptimConfig, RunConfig
from trainer._errors import ConfigError, DatasetError, TrainerError
from trainer._finetune import FinetuneAdvice, recommend_finetune
from trainer._history import EpochRecord, History, RunStatus, Stop
from trainer._loop import train

__all__ = [
    "Checkpoint",
    "ConfigError",
    "DataConfig",
    "DatasetError",
    "EpochRecord",
    "FinetuneAdvice",
    "FinetuneStrategy",
    "History",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "RunStatus",
    "Stop",
    "TrainerError",
    "load_checkpoint",
    "recommend_finetune",
    "train",
]
