"""torchvision's classification models by name (``arch: "torchvision:resnet18"``).

Each model is built untrained (``weights=None``: nothing is ever downloaded) with the
dataset's class count, then put under the trainer's ``Network`` contract: its classifier
(the last ``nn.Linear``, e.g. ``fc`` of a ResNet, ``classifier[-1]`` of a VGG) becomes
``head`` and the rest ``features``, so fine-tuning, linear probes and the last-layer
gradient norm work as for the built-in architectures. torchvision's own initialisation is
kept.

Inputs: the models expect 3 channels; 1-channel images (digits, MNIST) are replicated to
3 by a ``GrayToRGB`` stem, other channel counts are refused. A model that cannot take the
dataset's image size (VGG's five poolings on 8×8 digits, a ViT's fixed 224×224) is refused
before training, with torchvision's reason.

``weights_file``: a state dict under the data root (e.g. torchvision's downloaded
``resnet18-f37072fd.pth``, copied there by hand), read with ``torch.load(weights_only=True)``
(tensors only, no code runs). Its classifier may have another class count (1000 for
ImageNet weights): the weights load as they are and the head is then replaced by a fresh
one for this dataset.

The names are checked torch-free in trainer._torchvision_names; this module builds.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from trainer._config import ModelConfig
from trainer._errors import ConfigError
from trainer._paths import OutsideDataRoot, resolve_inside
from trainer._torchvision_names import TORCHVISION_PREFIX

# Builder arguments some models need: GoogLeNet and Inception v3 return auxiliary logits
# while training unless told not to (the loop expects one logits tensor), and warn unless
# their initialisation is chosen explicitly.
_BUILD_ARGS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
# Channels the models take; 1-channel images are replicated to this many.
RGB = 3


class GrayToRGB(nn.Module):
    """Replicates 1-channel images to 3 channels, for models made for RGB input: the same
    picture on each channel, as a gray photo converted to RGB would be."""

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, RGB, -1, -1)  # (N, 1, H, W) -> (N, 3, H, W), a view


def torchvision_parts(
    cfg: ModelConfig,
    *,
    in_channels: int,
    num_classes: int,
    data_dir: Path | None,
    load_weights_file: bool = True,
) -> tuple[nn.Module, nn.Linear]:
    """The torchvision model *cfg.arch* names, for this dataset, as (features, head): the
    model with its classifier replaced by an identity (behind a ``GrayToRGB`` stem for
    1-channel images), and that classifier. Starts from ``cfg.weights_file`` under
    *data_dir* unless not *load_weights_file* (a checkpoint's weights come next)."""
    name = cfg.arch.removeprefix(TORCHVISION_PREFIX)
    if in_channels not in (1, RGB):
        raise ConfigError(
            f"arch: {cfg.arch} takes 1- or 3-channel images, the dataset has {in_channels}"
        )
    model = torchvision.models.get_model(
        name, weights=None, num_classes=num_classes, **_BUILD_ARGS.get(name, {})
    )
    path, classifier = _classifier(model)
    if cfg.weights_file is not None and load_weights_file:
        state = _read_weights(cfg.weights_file, data_dir)
        file_classes = _outputs_in(state, path, cfg)
        if file_classes != num_classes:
            # Load the file into a classifier of its own size, then replace it below.
            classifier = nn.Linear(classifier.in_features, file_classes)
            _set_submodule(model, path, classifier)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ConfigError(
                f"weights_file: {cfg.weights_file!r} does not fit {cfg.arch}: {exc}"
            ) from exc
        if file_classes != num_classes:
            classifier = nn.Linear(classifier.in_features, num_classes)
            nn.init.normal_(classifier.weight, std=0.01)  # as the built-in heads start
            nn.init.zeros_(classifier.bias)
    _set_submodule(model, path, nn.Identity())
    stem: list[nn.Module] = [GrayToRGB()] if in_channels == 1 else []
    return nn.Sequential(*stem, model), classifier


def _classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The dotted path and module of *model*'s classifier: its last Linear layer."""
    linears = [(p, m) for p, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise AssertionError("every offered torchvision model ends in a Linear classifier")
    path, module = linears[-1]
    assert isinstance(module, nn.Linear)
    return path, module


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _read_weights(relative: str, data_dir: Path | None) -> dict[str, Tensor]:
    if data_dir is None:
        raise ConfigError("weights_file: needs a data root (set data_dir; the service sets it)")
    try:
        path = resolve_inside(data_dir, relative)
    except OutsideDataRoot as exc:
        raise ConfigError(f"weights_file: {exc}") from exc
    if not path.is_file():
        raise ConfigError(f"weights_file: no file {relative!r} under the data root")
    try:
        # weights_only: tensors and plain containers only; a pickled class never runs.
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigError(f"weights_file: cannot read {relative!r} as a state dict: {exc}") from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(
            f"weights_file: {relative!r} is not a state dict (a mapping of parameter names to "
            "tensors, as torch.save(model.state_dict()) writes)"
        )
    return state


def _outputs_in(state: dict[str, Tensor], path: str, cfg: ModelConfig) -> int:
    weight = state.get(f"{path}.weight")
    if weight is None or weight.ndim != 2:
        raise ConfigError(
            f"weights_file: {cfg.weights_file!r} has no {path}.weight matrix, the classifier "
            f"of {cfg.arch}; is it a state dict of that model?"
        )
    return int(weight.shape[0])

