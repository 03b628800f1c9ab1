"""sweepdoc's training engine: pure PyTorch, no HTTP, no database, no Optuna.

``train(RunConfig(...), on_epoch=..., checkpoint_path=..., epoch_state_path=...,
resume_from=...) -> History``; see
docs/architecture.md ("trainer") and docs/trainer.md.

The configs, results and errors import without torch (the API server and the CLI
validate configs without paying for it); ``train``, ``load_checkpoint``,
``Checkpoint``, ``load_resume_state``, ``ResumeState`` and the LR range test
(``range_test``, ``RangeTestResult``, ``Suggestion``, ``SuggestionRule``) load torch on
first use, and so does packed training (``train_packed``, ``estimate_pack_bytes``; the
check ``can_pack`` does not), and so do the plugin protocols (``ModelPlugin``,
``DatasetPlugin``, ``PluginDataset``: trainer._plugin_api).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from trainer._config import (
    BUILTIN_ARCHS,
    BUILTIN_DATASETS,
    IMAGEFOLDER_PREFIX,
    MAX_EPOCHS,
    DataConfig,
    DataRecipe,
    DeviceName,
    FinetuneStrategy,
    ModelConfig,
    OptimConfig,
    OptimRecipe,
    RunConfig,
    check_arch,
    check_dataset,
    check_device,
)
from trainer._curves import (
    CURVE_KEYS,
    HEALTH_KEYS,
    METRIC_KEYS,
    curves_json,
    finite_or_none,
    json_safe,
)
from trainer._errors import ConfigError, DatasetError, TrainerError
from trainer._finetune import FinetuneAdvice, recommend_finetune
from trainer._history import DataFacts, EpochRecord, History, RunStatus, Stop
from trainer._packed_check import PER_MEMBER_FIELDS, can_pack
from trainer._plugins import (
    PLUGIN_PREFIX,
    PluginDescription,
    PluginError,
    PluginKind,
    describe_plugins,
)
from trainer._torchvision_names import TORCHVISION_PREFIX, torchvision_models

if TYPE_CHECKING:
    from trainer._checkpoint import Checkpoint, checkpoint_epoch, load_checkpoint
    from trainer._evaluate import Evaluation, evaluate_checkpoint
    from trainer._loop import train, warm_up
    from trainer._packed_loop import MemberEpoch, OnMemberEpoch, train_packed
    from trainer._packed_memory import estimate_pack_bytes, known_image_side
    from trainer._plugin_api import DatasetPlugin, ModelPlugin, PluginDataset
    from trainer._range_test import RangeTestResult, Suggestion, SuggestionRule, range_test
    from trainer._resume import ResumeState, load_resume_state

_LAZY = {
    "train": "trainer._loop",
    "warm_up": "trainer._loop",
    "load_checkpoint": "trainer._checkpoint",
    "Checkpoint": "trainer._checkpoint",
    "Evaluation": "trainer._evaluate",
    "checkpoint_epoch": "trainer._checkpoint",
    "evaluate_checkpoint": "trainer._evaluate",
    "ResumeState": "trainer._resume",
    "load_resume_state": "trainer._resume",
    "DatasetPlugin": "trainer._plugin_api",
    "ModelPlugin": "trainer._plugin_api",
    "PluginDataset": "trainer._plugin_api",
    "range_test": "trainer._range_test",
    "RangeTestResult": "trainer._range_test",
    "Suggestion": "trainer._range_test",
    "SuggestionRule": "trainer._range_test",
    "train_packed": "trainer._packed_loop",
    "OnMemberEpoch": "trainer._packed_loop",
    "MemberEpoch": "trainer._packed_loop",
    "estimate_pack_bytes": "trainer._packed_memory",
    "known_image_side": "trainer._packed_memory",
}

__all__ = [
    "BUILTIN_ARCHS",
    "BUILTIN_DATASETS",
    "CURVE_KEYS",
    "HEALTH_KEYS",
    "IMAGEFOLDER_PREFIX",
    "MAX_EPOCHS",
    "METRIC_KEYS",
    "PER_MEMBER_FIELDS",
    "PLUGIN_PREFIX",
    "TORCHVISION_PREFIX",
    "Checkpoint",
    "ConfigError",
    "DataConfig",
    "DataFacts",
    "DataRecipe",
    "DatasetError",
    "DatasetPlugin",
    "DeviceName",
    "EpochRecord",
    "Evaluation",
    "FinetuneAdvice",
    "FinetuneStrategy",
    "History",
    "MemberEpoch",
    "ModelConfig",
    "ModelPlugin",
    "OnMemberEpoch",
    "OptimConfig",
    "OptimRecipe",
    "PluginDataset",
    "PluginDescription",
    "PluginError",
    "PluginKind",
    "RangeTestResult",
    "ResumeState",
    "RunConfig",
    "RunStatus",
    "Stop",
    "Suggestion",
    "SuggestionRule",
    "TrainerError",
    "can_pack",
    "check_arch",
    "check_dataset",
    "check_device",
    "checkpoint_epoch",
    "curves_json",
    "describe_plugins",
    "estimate_pack_bytes",
    "evaluate_checkpoint",
    "finite_or_none",
    "json_safe",
    "known_image_side",
    "load_checkpoint",
    "load_resume_state",
    "range_test",
    "recommend_finetune",
    "torchvision_models",
    "train",
    "train_packed",
    "warm_up",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
