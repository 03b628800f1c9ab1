"""sweepdoc's models: its own CNN builders (architecture as data, norms and activations
injected), the one init routine, and ``build_model``, which also wraps models built elsewhere.

Every model meets one contract: a ``Network`` with ``features`` (the backbone, ends in (N, F)
features) and ``head`` (a single ``nn.Linear(F, num_classes)``), so fine-tuning can swap the
head and the health statistics can find the first and the last layer. The parts and the
contract live in trainer._layers; torchvision's (``torchvision:<name>``) and plugins'
(``plugin:<name>``) models come in through trainer._external_models. The rest of the trainer
imports the model API from here (``__all__``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from torch import nn

from trainer._config import FinetuneStrategy, ModelConfig
from trainer._errors import ConfigError
from trainer._external_models import (
    PluginNetwork,
    build_plugin_model,
    build_torchvision_network,
)
from trainer._layers import (
    LEAKY_SLOPE,
    BasicBlock,
    GridPool,
    Network,
    conv_bn_act,
    make_activation,
)
from trainer._plugins import plugin_name
from trainer._torchvision_names import TORCHVISION_PREFIX

__all__ = [
    "BUILDERS",
    "Network",
    "PluginNetwork",
    "apply_finetune",
    "build_model",
    "first_layer",
    "initialize",
]

# Side of the pooled grid in front of the simple model's head.
SIMPLE_GRID = 2


def _pooled_stages(
    in_channels: int, image_size: int, cfg: ModelConfig, convs_per_stage: int
) -> tuple[list[nn.Module], int]:
    """Stages of ``convs_per_stage`` 3×3 convolutions, each stage followed by 2×2 max
    pooling while the feature map is still at least 2 px; widths double per stage.

    Three stacked 3×3 convolutions see a 7×7 window with 3·9·C² weights instead of
    49·C², and three non-linearities instead of one (the seed's VGG argument).
    """
    layers: list[nn.Module] = []
    cin, size = in_channels, image_size
    for stage in range(cfg.stages):
        cout = cfg.width * 2**stage
        for _ in range(convs_per_stage):
            layers += conv_bn_act(cin, cout, cfg)
            cin = cout
        if size >= 2:
            layers.append(nn.MaxPool2d(2))
            size //= 2
    return layers, cin


def build_simple(in_channels: int, image_size: int, num_classes: int, cfg: ModelConfig) -> Network:
    """Baseline: ``stages`` × (``depth`` conv-norm-act, max-pool), average-pooled to a 2×2
    grid, linear classifier.

    The 2×2 grid keeps the coarse layout a digit needs (a global average throws it away
    and learns several times slower on 8×8 digits) while the head stays independent of
    the image size, so a checkpoint can be fine-tuned on another image size.
    """
    layers, channels = _pooled_stages(in_channels, image_size, cfg, cfg.depth)
    features = nn.Sequential(*layers, GridPool(SIMPLE_GRID), nn.Flatten())
    return Network(features, channels * SIMPLE_GRID**2, num_classes, cfg.dropout)


def build_vgg(in_channels: int, image_size: int, num_classes: int, cfg: ModelConfig) -> Network:
    """VGG: stages of stacked 3×3 convs with max-pooling, then (like VGG's classifier) a
    hidden fully connected layer before the linear head."""
    layers, channels = _pooled_stages(in_channels, image_size, cfg, cfg.depth)
    hidden = 2 * channels
    features = nn.Sequential(
        *layers,
        GridPool(1),
        nn.Flatten(),
        nn.Linear(channels, hidden),
        make_activation(cfg.activation),
    )
    return Network(features, hidden, num_classes, cfg.dropout)


def build_resnet(in_channels: int, image_size: int, num_classes: int, cfg: ModelConfig) -> Network:
    """ResNet for small images: a 3×3 stem, ``stages`` × ``depth`` basic blocks (the first
    block of every later stage halves H and W), global average pool, linear head."""
    layers: list[nn.Module] = conv_bn_act(in_channels, cfg.width, cfg)
    cin = cfg.width
    for stage in range(cfg.stages):
        cout = cfg.width * 2**stage
        for block in range(cfg.depth):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(cin, cout, stride, cfg))
            cin = cout
    features = nn.Sequential(*layers, GridPool(1), nn.Flatten())
    return Network(features, cin, num_classes, cfg.dropout)


BUILDERS: dict[str, Callable[[int, int, int, ModelConfig], Network]] = {
    "simple": build_simple,
    "vgg": build_vgg,
    "resnet": build_resnet,
}


def build_model(
    cfg: ModelConfig,
    *,
    in_channels: int,
    image_size: int,
    num_classes: int,
    data_dir: Path | None = None,
    load_weights_file: bool = True,
) -> Network:
    """Build and initialise the configured network. A torchvision model's ``weights_file``
    is read under *data_dir*, unless *load_weights_file* is False (a checkpoint's weights
    are loaded into it next)."""
    if cfg.arch.startswith(TORCHVISION_PREFIX):
        return build_torchvision_network(
            cfg,
            in_channels=in_channels,
            image_size=image_size,
            num_classes=num_classes,
            data_dir=data_dir,
            load_weights_file=load_weights_file,
        )
    name = plugin_name(cfg.arch)
    if name is not None:
        return build_plugin_model(
            name, cfg, in_channels=in_channels, image_size=image_size, num_classes=num_classes
        )
    model = BUILDERS[cfg.arch](in_channels, image_size, num_classes, cfg)
    initialize(model, cfg)
    return model


KaimingNonlinearity = Literal["relu", "leaky_relu", "sigmoid", "tanh"]


def _kaiming_args(activation: str) -> tuple[KaimingNonlinearity, float]:
    # GELU has no entry in torch's gain table; it behaves like ReLU for x ≫ 0 and ≈0 for
    # x ≪ 0, so ReLU's gain √2 is the usual choice.
    if activation in ("relu", "gelu"):
        return "relu", 0.0
    if activation == "leaky_relu":
        return "leaky_relu", LEAKY_SLOPE
    if activation == "tanh":
        return "tanh", 0.0  # gain 5/3
    return "sigmoid", 0.0  # gain 1


def initialize(model: Network, cfg: ModelConfig) -> None:
    """The one place weights are initialised.

    - Convolutions and hidden linear layers: MSRA/Kaiming normal, std = gain/√fan_in
      (the seed's ``randn(Din, Dout) * sqrt(2 / Din)`` for ReLU), which keeps the
      activation scale constant through a deep ReLU stack; biases 0.
    - Norm layers: γ = 1, β = 0.
    - The head: N(0, 0.01²), bias 0, so the initial logits are near zero and the first
      loss is ≈ ln(num_classes) (as torchvision's VGG does).
    - ``zero_init_residual``: each residual block's last norm starts at γ = 0, so every
      block starts as the identity and a deep ResNet trains like a shallow one at first
      (Goyal et al. 2017). Without a norm layer there is no γ and nothing is zeroed.
    """
    nonlinearity, slope = _kaiming_args(cfg.activation)
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear) and module is not model.head:
            nn.init.kaiming_normal_(
                module.weight, a=slope, mode="fan_in", nonlinearity=nonlinearity
            )
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d | nn.GroupNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    nn.init.normal_(model.head.weight, std=0.01)
    nn.init.zeros_(model.head.bias)
    if cfg.zero_init_residual:
        for module in model.modules():
            if isinstance(module, BasicBlock) and isinstance(
                module.norm2, nn.BatchNorm2d | nn.GroupNorm
            ):
                nn.init.zeros_(module.norm2.weight)


def first_layer(model: Network) -> nn.Module:
    """The first convolution (its gradient norm is a vanishing-gradient signal); in a
    plugin's model without one, its first layer with weights."""
    for module in model.features.modules():
        if isinstance(module, nn.Conv2d):
            return module
    for module in model.features.modules():
        if any(True for _ in module.parameters(recurse=False)):
            return module
    raise AssertionError("every model has a layer with weights (PluginNetwork checks)")


def apply_finetune(model: Network, strategy: FinetuneStrategy, num_classes: int) -> None:
    """Prepare a model already holding the checkpoint's weights.

    ``linear-probe``: a fresh head, every other parameter frozen. ``full``: everything
    trains; the head is replaced only when the class count differs.
    """
    if isinstance(model, PluginNetwork):
        if strategy is FinetuneStrategy.FULL and model.num_classes == num_classes:
            return  # the weights as they are: nothing to swap
        raise ConfigError(
            f"init_from: model plugin {model.origin} has no head sweepdoc can replace, so it "
            f"can only be fine-tuned in full on as many classes as its checkpoint "
            f"(finetune=full), got finetune={strategy.value} with {num_classes} classes"
        )
    old = model.head
    if strategy is FinetuneStrategy.LINEAR_PROBE or old.out_features != num_classes:
        model.head = nn.Linear(old.in_features, num_classes).to(old.weight.device)
        nn.init.normal_(model.head.weight, std=0.01)
        nn.init.zeros_(model.head.bias)
    if strategy is FinetuneStrategy.LINEAR_PROBE:
        for parameter in model.features.parameters():
            parameter.requires_grad_(False)
