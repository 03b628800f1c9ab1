"""Models built elsewhere, under sweepdoc's ``Network`` contract: torchvision's
(``torchvision:<name>``; trainer._torchvision splits off their classifier as the head) and
plugins' (``plugin:<name>``, a :class:`PluginNetwork` around whatever module the plugin
builds). Each is tried once on blank images of the dataset's size (:func:`check_takes`), so a
model that cannot take them fails by name before training starts.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from trainer._config import ModelConfig
from trainer._errors import ConfigError
from trainer._layers import Network
from trainer._plugins import PluginError, PluginKind, load_plugin


def build_torchvision_network(
    cfg: ModelConfig,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    data_dir: Path | None,
    load_weights_file: bool,
) -> Network:
    """A torchvision model as a ``Network``: its classifier is the head, the rest the
    features (trainer._torchvision), torchvision's own initialisation kept."""
    from trainer._torchvision import torchvision_parts  # torchvision loads for its models only

    features, head = torchvision_parts(
        cfg,
        in_channels=in_channels,
        num_classes=num_classes,
        data_dir=data_dir,
        load_weights_file=load_weights_file,
    )
    network = Network(features, head.in_features, num_classes, cfg.dropout)
    network.head = head
    check_takes(
        network,
        label=cfg.arch,
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
    )
    return network


class PluginNetwork(Network):
    """A plugin's module under the ``Network`` contract.

    The module maps images to logits by itself, so it runs whole as ``features``, with no
    dropout or head of the trainer's own. ``head`` names its last layer with weights (in
    registration order), which the gradient statistics report as the last layer; it is
    deliberately not registered as a submodule of this wrapper: it already is one, inside
    ``features``, and registering it twice would store its weights twice in checkpoints.
    A plugin's classifier cannot be swapped (fine-tuning to other classes, linear probes).
    """

    def __init__(self, module: nn.Module, *, origin: str, num_classes: int):
        nn.Module.__init__(self)  # not Network's: it would build a head of its own
        self.features = module
        self.dropout = nn.Dropout(0.0)
        layers = [m for m in module.modules() if any(True for _ in m.parameters(recurse=False))]
        if not layers:
            raise PluginError(f"model plugin {origin} built a model without parameters")
        object.__setattr__(self, "head", layers[-1])
        self.origin = origin
        self.num_classes = num_classes

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.features(x)  # (N, num_classes)
        return logits


def build_plugin_model(
    name: str, cfg: ModelConfig, *, in_channels: int, image_size: int, num_classes: int
) -> Network:
    """The model plugin *name* builds for *cfg*, checked to give one logit per class."""
    plugin = load_plugin(PluginKind.MODEL, name)
    origin = plugin.entry.origin
    try:
        module = plugin.obj.build(cfg, num_classes, in_channels)
    except Exception as exc:  # third-party code: report it by the plugin's name
        raise PluginError(
            f"model plugin {origin} failed to build its model: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(module, nn.Module):
        raise PluginError(
            f"model plugin {origin}: build() must return a torch nn.Module, got "
            f"{type(module).__name__}"
        )
    network = PluginNetwork(module, origin=origin, num_classes=num_classes)
    check_takes(
        network,
        label=f"model plugin {origin}",
        in_channels=in_channels,
        image_size=image_size,
        num_classes=num_classes,
    )
    return network


# Images of the trial forward pass of a model built elsewhere.
_PROBE_BATCH = 2


def check_takes(
    network: Network, *, label: str, in_channels: int, image_size: int, num_classes: int
) -> None:
    """One forward pass on blank images of the dataset's size, in eval mode: a model built
    elsewhere (torchvision, a plugin; *label* names it) that cannot take them, or that does
    not answer one logit per class, fails here, named, instead of in the first training
    step."""
    probe = torch.zeros(_PROBE_BATCH, in_channels, image_size, image_size)  # (2, C, H, W)
    network.eval()
    try:
        with torch.no_grad():
            logits = network(probe)
    except (RuntimeError, ValueError, AssertionError, TypeError) as exc:
        raise ConfigError(
            f"arch: {label} cannot take {in_channels}×{image_size}×{image_size} images: "
            f"{type(exc).__name__}: {exc}; pick another model or larger images "
            "(an image folder's data.image_size)"
        ) from exc
    finally:
        network.train()
    shape = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
    if shape != (_PROBE_BATCH, num_classes):
        raise ConfigError(
            f"arch: {label} must answer (batch, {num_classes}) logits, one per class, "
            f"got {shape} for a batch of {_PROBE_BATCH}"
        )
