"""Model builders: shapes for every architecture × norm × activation, MSRA init, layer
norm, inverted dropout."""

import itertools

import pytest
import torch
from torch import nn

from trainer import ModelConfig
from trainer._layers import GridPool, make_norm
from trainer._models import build_model, first_layer, initialize

ARCHS = ("simple", "vgg", "resnet")
NORMS = ("batch", "layer", "none")
ACTIVATIONS = ("relu", "gelu", "sigmoid", "tanh", "leaky_relu")


@pytest.mark.parametrize(
    ("arch", "norm", "activation"),
    list(itertools.product(ARCHS, NORMS, ACTIVATIONS)),
    ids=lambda value: str(value),
)
def test_every_model_builds_with_the_right_output_shape(
    arch: str, norm: str, activation: str
) -> None:
    # Non-default everything: 3 channels, 20×20 images, 7 classes, 3 stages.
    cfg = ModelConfig(arch=arch, norm=norm, activation=activation, width=4, stages=3, dropout=0.2)
    model = build_model(cfg, in_channels=3, image_size=20, num_classes=7)
    out = model(torch.randn(5, 3, 20, 20))
    assert out.shape == (5, 7)
    assert model.head.out_features == 7
    assert isinstance(first_layer(model), nn.Conv2d)
    assert first_layer(model).in_channels == 3
    # The norm option is really wired in.
    kinds = {type(m) for m in model.modules()}
    if norm == "batch":
        assert nn.BatchNorm2d in kinds and nn.GroupNorm not in kinds
    elif norm == "layer":
        assert nn.GroupNorm in kinds and nn.BatchNorm2d not in kinds
    else:
        assert nn.BatchNorm2d not in kinds and nn.GroupNorm not in kinds


def test_depth_and_width_shape_the_network() -> None:
    def convs(model: nn.Module) -> list[nn.Conv2d]:
        return [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]

    vgg = build_model(
        ModelConfig(arch="vgg", width=8, depth=3, stages=2),
        in_channels=1,
        image_size=8,
        num_classes=10,
    )
    assert [c.out_channels for c in convs(vgg)] == [8, 8, 8, 16, 16, 16]
    resnet = build_model(
        ModelConfig(arch="resnet", width=8, depth=2, stages=2),
        in_channels=1,
        image_size=8,
        num_classes=10,
    )
    assert len(convs(resnet)) == 1 + 2 * 2 * 2  # stem + stages × blocks × 2 convs
    # Arch defaults for depth: simple 1, vgg 2, resnet 2.
    assert ModelConfig(arch="simple").depth == 1
    assert ModelConfig(arch="vgg").depth == 2
    assert ModelConfig(arch="resnet", depth=3).depth == 3


def test_images_smaller_than_the_pooling_still_work() -> None:
    # 4 stages on 8×8 digits: pooling stops at 1×1 instead of failing.
    for arch in ARCHS:
        model = build_model(
            ModelConfig(arch=arch, width=4, stages=4), in_channels=1, image_size=8, num_classes=10
        )
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def _activation_stds(init_std: float | None) -> list[float]:
    """The seed's experiment as convolutions: 7 stacked 3×3 conv + ReLU layers, no norm."""
    torch.manual_seed(0)
    cfg = ModelConfig(arch="vgg", norm="none", activation="relu", width=64, depth=7, stages=1)
    model = build_model(cfg, in_channels=64, image_size=16, num_classes=10)
    if init_std is not None:  # the naive alternative: small random weights
        for module in model.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, std=init_std)
    stds: list[float] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: stds.append(float(out.std())))
        for m in model.features.modules()
        if isinstance(m, nn.ReLU)
    ][:7]
    with torch.no_grad():
        model.features[:21](torch.randn(16, 64, 16, 16))  # the 7 conv+norm+act triples
    for hook in hooks:
        hook.remove()
    return stds


def test_msra_init_keeps_activation_scale_through_a_deep_relu_stack() -> None:
    stds = _activation_stds(None)
    assert len(stds) == 7
    # Kaiming (std = √(2/fan_in)) keeps E[x²] constant: the 7th layer's scale stays within
    # a small factor of the first's.
    assert 0.5 < stds[-1] / stds[0] < 2.0
    # Small random weights (std 0.01) collapse the signal layer after layer.
    naive = _activation_stds(0.01)
    assert naive[-1] / naive[0] < 1e-3


def test_zero_init_residual_starts_each_block_as_identity() -> None:
    cfg = ModelConfig(arch="resnet", width=4, depth=2, zero_init_residual=True)
    model = build_model(cfg, in_channels=1, image_size=8, num_classes=10)
    last_norms = [m.norm2 for m in model.modules() if hasattr(m, "norm2")]
    assert last_norms and all(float(n.weight.detach().abs().sum()) == 0.0 for n in last_norms)
    off = build_model(
        cfg.model_copy(update={"zero_init_residual": False}),
        in_channels=1,
        image_size=8,
        num_classes=10,
    )
    assert all(
        float(m.norm2.weight.detach().sum()) > 0 for m in off.modules() if hasattr(m, "norm2")
    )


@torch.no_grad()
def test_layer_norm_normalizes_each_sample_over_c_h_w() -> None:
    norm = make_norm("layer", 6)
    x = torch.randn(4, 6, 5, 5) * torch.tensor([1.0, 5.0, 0.1, 30.0])[:, None, None, None]
    x = x + torch.tensor([0.0, 3.0, -7.0, 100.0])[:, None, None, None]
    y = norm(x)
    per_sample = y.flatten(1)  # (N, C·H·W)
    torch.testing.assert_close(per_sample.mean(dim=1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        per_sample.var(dim=1, unbiased=False), torch.ones(4), atol=5e-3, rtol=0
    )
    # Per sample, not per batch: a sample's output does not depend on its batch mates.
    torch.testing.assert_close(norm(x[:1]), y[:1])
    # Over C×H×W together, not per channel: channel means are left uneven.
    x2 = torch.randn(2, 6, 5, 5) + torch.arange(6.0)[None, :, None, None] * 3
    channel_means = norm(x2).mean(dim=(0, 2, 3))
    assert float(channel_means.abs().max()) > 0.5


def test_dropout_is_inverted() -> None:
    cfg = ModelConfig(arch="simple", width=4, dropout=0.5)
    model = build_model(cfg, in_channels=1, image_size=8, num_classes=10)
    drop = model.dropout
    x = torch.ones(200_000)
    drop.eval()
    assert torch.equal(drop(x), x)  # test mode: identity
    drop.train()
    torch.manual_seed(0)
    y = drop(x)
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 2.0))  # survivors scaled by 1/(1-p)
    assert abs(float(y.mean()) - 1.0) < 0.01  # expectation preserved
    assert abs(float((y == 0).float().mean()) - 0.5) < 0.01  # p is the drop probability


def test_initialize_is_the_only_init_and_is_reproducible() -> None:
    cfg = ModelConfig(arch="vgg", width=4)
    torch.manual_seed(1)
    a = build_model(cfg, in_channels=1, image_size=8, num_classes=10)
    torch.manual_seed(1)
    b = build_model(cfg, in_channels=1, image_size=8, num_classes=10)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    initialize(a, cfg)  # re-running gives a fresh draw with the same statistics
    assert float(a.head.weight.detach().std()) < 0.02
    assert float(a.head.bias.detach().abs().sum()) == 0.0


@pytest.mark.parametrize(("size", "side"), [(2, 2), (2, 7), (1, 1), (1, 4)])
def test_grid_pool_computes_what_adaptive_pooling_does(size: int, side: int) -> None:
    # Passing a map that is already the grid through must not change a value or a gradient.
    x = torch.randn(3, 4, side, side).contiguous(memory_format=torch.channels_last)
    ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = GridPool(size)(ours), nn.AdaptiveAvgPool2d(size)(theirs)
    assert torch.equal(out, expected)
    weights = torch.randn_like(expected)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    assert ours.grad is not None and theirs.grad is not None
    assert torch.equal(ours.grad, theirs.grad)
