"""Training-health statistics of a packed network, member by member: the same numbers
``trainer._health`` measures on one network (gradient norms: per-epoch RMS over the
steps, global, first convolution and head; dead ReLUs on one evaluation batch), and
gradient clipping by each member's own global norm."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from trainer._health import relu_hooks
from trainer._models import Network, first_layer
from trainer._packed_ops import member_view


class PackedGradNorms:
    """Per-member squared gradient norms of every parameter, and their epoch RMS."""

    def __init__(self, model: Network, k: int, device: torch.device):
        self.k = k
        self.params = [p for p in model.parameters() if p.requires_grad]
        ids = {id(p): i for i, p in enumerate(self.params)}
        self.first_idx = [ids[id(p)] for p in first_layer(model).parameters()]
        self.last_idx = [ids[id(p)] for p in model.head.parameters()]
        self.sq_sum = torch.zeros(len(self.params), k, device=device)  # Σ_steps ‖g_p,m‖²
        self.steps = torch.zeros(k, device=device)  # steps measured, per member

    def reset(self) -> None:
        self.sq_sum.zero_()
        self.steps.zero_()

    def squares(self) -> Tensor:
        """(P, K) squared norm of each parameter's gradient, member by member."""
        grads = [p.grad for p in self.params]
        assert all(g is not None for g in grads), "after backward()"
        return torch.stack([member_view(g, self.k).float().square().sum(dim=1) for g in grads])  # type: ignore[arg-type]

    def update(self, squares: Tensor, measured: Tensor) -> None:
        """Add one step's *squares* (P, K) for the *measured* (K,) bool members."""
        self.sq_sum += torch.where(measured, squares, 0.0)
        self.steps += measured

    def result(self, m: int) -> tuple[float, float, float]:
        """Member *m*'s (global, first layer, last layer) RMS; 0.0 when not measured."""
        steps = float(self.steps[m])
        if steps == 0:
            return 0.0, 0.0, 0.0
        per_param = (self.sq_sum[:, m] / steps).tolist()

        def rms(indices: list[int]) -> float:
            return math.sqrt(sum(per_param[i] for i in indices))

        return rms(list(range(len(per_param)))), rms(self.first_idx), rms(self.last_idx)


def clip_members(params: list[nn.Parameter], k: int, squares: Tensor, max_norm: Tensor) -> None:
    """``clip_grad_norm_`` for each member alone: scale member m's gradients by
    min(1, max_norm[m] / (‖g_m‖ + 1e-6)); ``inf`` leaves a member unclipped."""
    total = squares.sum(dim=0).sqrt()  # (K,) each member's global norm
    coef = (max_norm / (total + 1e-6)).clamp(max=1.0)[:, None]  # (K, 1)
    for p in params:
        assert p.grad is not None
        member_view(p.grad, k).mul_(coef)


@contextmanager
def packed_dead_relu_probe(model: nn.Module, k: int) -> Iterator[list[tuple[Tensor, int]]]:
    """While active, each ReLU call appends (dead channels per member (K,), channels per
    member). Outputs are (N, K·C, H, W) after a convolution, (K, N, F) after a linear."""
    counts: list[tuple[Tensor, int]] = []

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        out = output.detach()
        if out.dim() == 4:
            kc = out.shape[1]
            peak = out.transpose(0, 1).reshape(kc, -1).amax(dim=1).view(k, -1)  # (K, C)
        else:
            peak = out.amax(dim=1)  # (K, F)
        # Dead = never positive; a NaN peak is not evidence of a dead unit (as unpacked).
        counts.append(((peak <= 0).sum(dim=1), peak.shape[1]))

    with relu_hooks(model, hook):
        yield counts


def member_dead_fractions(counts: list[tuple[Tensor, int]], k: int) -> list[float | None]:
    if not counts:
        return [None] * k
    dead = torch.stack([d for d, _ in counts]).sum(dim=0).tolist()  # (K,)
    total = sum(n for _, n in counts)
    return [d / total for d in dead]
