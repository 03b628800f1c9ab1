"""The parts sweepdoc's own architectures are made of, and the ``Network`` contract every
model meets (trainer._models builds sweepdoc's; trainer._external_models wraps torchvision's
and plugins').

Norms and activations are made by name, a fresh module per use, so each architecture is a
list of these parts (torchvision's habit: norm layers injected, not subclassed).
"""

from __future__ import annotations

from torch import Tensor, nn

from trainer._config import ModelConfig

# Slope of leaky_relu: torch's default, also used for its Kaiming gain.
LEAKY_SLOPE = 0.01


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


class GridPool(nn.AdaptiveAvgPool2d):
    """Average-pool each map to a square grid of side *output_size* (an int); a map already
    that size passes through as it is. Adaptive pooling over 1 × 1 bins returns the same
    values, but on a CPU its backward pass over channels-last maps is slow (0.1 ms a step for
    one digits CNN, 0.4 ms for a pack of five at width 32), and on the digits every network's
    last map is already the grid."""

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-2] == self.output_size and x.shape[-1] == self.output_size:
            return x
        return super().forward(x)


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
