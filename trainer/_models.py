"""CNN builders: architecture as data, norms and activations injected, one init routine.

All three architectures share the same parts and the same contract: a ``Network`` with
``features`` (the backbone, ends in (N, F) features) and ``head`` (a single
``nn.Linear(F, num_classes)``), so fine-tuning can swap the head and the health
statistics can find the first and the last layer.

Other models come in under the same contract: torchvision's (``torchvision:<name>``,
trainer._torchvision splits off their classifier as the head) and plugins'
(``plugin:<name>``, a :class:`PluginNetwork` around whatever module the plugin builds).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from trainer._config import FinetuneStrategy, ModelConfig
from trainer._errors import ConfigError
from trainer._plugins import PluginError, PluginKind, load_plugin, plugin_name
from trainer._torchvision_names import TORCHVISION_PREFIX

# Slope of leaky_relu: torch's default, also used for its Kaiming gain.
LEAKY_SLOPE = 0.01
# Side of the pooled grid in front of the simple model's head.
SIMPLE_GRID = 2


def make_norm(kind: str, channels: int) -> nn.Module:
    """batch: per channel over (N, H, W); layer: per sample over (C, H, W), i.e.
    GroupNorm with a single group (with a per-channel affine, like BatchNorm's);
    none: identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def make_activation(kind: str) -> nn.Module:
    """A fresh module per use, so forward hooks see each layer separately."""
    if kind == "relu":
        return nn.ReLU(inplace=True)
    if kind == "gelu":
        return nn.GELU()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "tanh":
        return nn.Tanh()
    return nn.LeakyReLU(LEAKY_SLOPE, inplace=True)


def conv_bn_act(cin: int, cout: int, cfg: ModelConfig, stride: int = 1) -> list[nn.Module]:
    # A conv followed by a norm does not need a bias: the norm's β replaces it.
    conv = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=cfg.norm == "none")
    return [conv, make_norm(cfg.norm, cout), make_activation(cfg.activation)]


class Network(nn.Module):
    """``features`` → (N, F), then dropout and the linear ``head``."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, dropout: float):
        super().__init__()
        self.features = features
        # nn.Dropout is inverted dropout: it scales the kept units by 1/(1-p) during
        # training, so evaluation needs no rescaling (the seed's "inverted dropout").
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.head(self.dropout(self.features(x)))  # (N, num_classes)
        return logits


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
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(SIMPLE_GRID), nn.Flatten())
    return Network(features, channels * SIMPLE_GRID**2, num_classes, cfg.dropout)


def build_vgg(in_channels: int, image_size: int, num_classes: int, cfg: ModelConfig) -> Network:
    """VGG: stages of stacked 3×3 convs with max-pooling, then (like VGG's classifier) a
    hidden fully connected layer before the linear head."""
    layers, channels = _pooled_stages(in_channels, image_size, cfg, cfg.depth)
    hidden = 2 * channels
    features = nn.Sequential(
        *layers,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(channels, hidden),
        make_activation(cfg.activation),
    )
    return Network(features, hidden, num_classes, cfg.dropout)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3×3 conv-norm layers plus a shortcut, activation after the
    sum (He et al. 2016); a 1×1 strided projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int, cfg: ModelConfig):
        super().__init__()
        bias = cfg.norm == "none"
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)
        self.norm1 = make_norm(cfg.norm, cout)
        self.act1 = make_activation(cfg.activation)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=bias)
        self.norm2 = make_norm(cfg.norm, cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=bias), make_norm(cfg.norm, cout)
            )
        self.act2 = make_activation(cfg.activation)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.act1(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        out = self.act2(out + self.shortcut(x))
        return out


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
    features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
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

