"""Fused layers: K copies of a layer as one layer (HFTA's horizontal fusion, Wang et al.,
MLSys 2021, github.com/UofT-EcoSystem/hfta, ideas only).

Layout: every packed tensor is *member-major*: member k owns one contiguous block of it.

- feature maps: (N, K·C, H, W), member k's channels are ``[k·C, (k+1)·C)``. Convolutions
  on them are grouped (``groups=K``), so member k's filters only see its own channels;
  BatchNorm2d(K·C) is exactly K BatchNorm2d(C), and GroupNorm(K, K·C) is exactly K
  GroupNorm(1, C) (sweepdoc's "layer" norm), because both normalise per channel or per
  group. Torch's own modules do that part; nothing here re-implements them.
- vectors after the flatten: (K, N, F), so K linear layers are one batched matmul.
- parameters: the K members' tensors concatenated on dim 0 (convolutions, norms) or
  stacked on a new dim 0 (linear layers); either way member k's values are the k-th of K
  equal blocks of the flattened tensor, which is what :func:`member_view` relies on.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def member_view(tensor: Tensor, k: int) -> Tensor:
    """(K, -1) view of a member-major tensor: row m is member m's values (no copy)."""
    return tensor.view(k, -1)


def select_members(tensor: Tensor, k: int, keep: Tensor) -> Tensor:
    """The blocks of the members in *keep* (indices, in order), in the same layout: a
    (K·C, …) tensor becomes (len(keep)·C, …), a (K, …) one (len(keep), …)."""
    rows = tensor.shape[0] // k
    picked = tensor.reshape(k, -1).index_select(0, keep)  # (len(keep), block)
    return picked.reshape(len(keep) * rows, *tensor.shape[1:]).clone()


class ChannelsLastConv2d(nn.Conv2d):
    """A convolution whose output is channels-last, so the layers after it keep that
    layout (``trainer._packed_models`` says why: the packed network's first convolution
    on a CPU). Same parameters and values as ``nn.Conv2d``."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).contiguous(memory_format=torch.channels_last)


class PackedLinear(nn.Module):
    """K linear layers ``(in → out)`` as one ``baddbmm``: (K, N, in) → (K, N, out).

    Weights are stored (K, out, in), member k's exactly as its ``nn.Linear`` stores them,
    so packing and unpacking is a stack and an index (HFTA stores the transpose)."""

    def __init__(self, k: int, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(k, out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(k, out_features))

    def forward(self, x: Tensor) -> Tensor:
        # (K, 1, out) + (K, N, in) @ (K, in, out) → (K, N, out)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class MemberFlatten(nn.Module):
    """(N, K·C, H, W) → (K, N, C·H·W): each member's flattened features, in the order
    ``nn.Flatten`` gives one unpacked network (channel-major)."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[0]
        return x.reshape(n, self.k, -1).transpose(0, 1)  # (K, N, C·H·W)


class SharedDropout(nn.Module):
    """Inverted dropout on (K, N, F) with one (N, F) mask shared by all K members.

    Members are packed only when they share the seed (trainer._packed_check), so each
    member's unpacked run would draw exactly this mask from the same default generator:
    ``nn.Dropout`` on a CPU tensor is ``empty_like(x).bernoulli_(1 - p)``, scaled by
    1/(1 - p), and so is this, one draw of the unpacked shape per step. (CUDA's fused
    dropout kernel draws differently, so there a member's masks differ from its unpacked
    run's; the statistics are the same.)"""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:  # (K, N, F)
        if not self.training or self.p == 0.0:
            return x
        noise = torch.empty(x.shape[1:], dtype=x.dtype, device=x.device)  # (N, F)
        noise.bernoulli_(1.0 - self.p).div_(1.0 - self.p)
        return x * noise
