"""Training-health statistics, gathered cheaply enough to run every epoch.

Gradient norms: after each backward pass one fused ``torch._foreach_norm`` call gives the
norm of every parameter's gradient; their squares are accumulated on the device (no host
sync), and at the end of the epoch the root-mean-square over the steps is reported for
all parameters, the first convolution and the head.

Dead ReLUs: forward hooks on every ``nn.ReLU`` during one evaluation batch; a channel
(or hidden unit) is dead when it outputs 0 for every image and position of that batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from trainer._models import Network, first_layer


class GradNormMeter:
    """Per-epoch RMS of the global, first-layer and last-layer gradient norms."""

    def __init__(self, model: Network, device: torch.device):
        self.params = [p for p in model.parameters() if p.requires_grad]
        ids = {id(p): i for i, p in enumerate(self.params)}
        self.first_idx = [ids[id(p)] for p in first_layer(model).parameters() if id(p) in ids]
        self.last_idx = [ids[id(p)] for p in model.head.parameters() if id(p) in ids]
        self.sq_sum = torch.zeros(len(self.params), device=device)  # Σ_steps ‖g_p‖²
        self.steps = 0

    def reset(self) -> None:
        self.sq_sum.zero_()
        self.steps = 0

    def update(self) -> None:
        """Call after ``backward()``: three device ops, no synchronisation."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if len(grads) != len(self.params):
            return  # a step without gradients for every parameter (none in our models)
        norms = torch.stack(torch._foreach_norm(grads)).float()  # (P,)
        self.sq_sum.addcmul_(norms, norms)
        self.steps += 1

    def result(self) -> tuple[float, float, float]:
        """(global, first layer, last layer); 0.0 when nothing was measured."""
        if self.steps == 0:
            return 0.0, 0.0, 0.0
        per_param = (self.sq_sum / self.steps).tolist()

        def rms(indices: list[int]) -> float:
            return math.sqrt(sum(per_param[i] for i in indices)) if indices else 0.0

        return rms(list(range(len(per_param)))), rms(self.first_idx), rms(self.last_idx)


@contextmanager
def dead_relu_probe(model: nn.Module) -> Iterator[list[tuple[Tensor, int]]]:
    """While active, each ReLU call appends (dead channels as a 0-d tensor, channels)."""
    counts: list[tuple[Tensor, int]] = []

    def hook(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        channels = output.shape[1]
        # max over everything but the channel axis; one reduction over a (C, rest) view
        # is several times faster than any() over a list of dims.
        peak = output.detach().transpose(0, 1).reshape(channels, -1).amax(dim=1)  # (C,)
        # Dead = never positive. A NaN peak (a blown-up network) is not evidence of a
        # dead unit, so it does not count as one.
        dead = peak <= 0
        counts.append((dead.sum(), channels))

    with relu_hooks(model, hook):
        yield counts


@contextmanager
def relu_hooks(
    model: nn.Module, hook: Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]
) -> Iterator[None]:
    """*hook* runs after every ReLU of *model* while active; removed on the way out, even
    when the epoch raised (the probe of the next one must not count twice)."""
    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def dead_fraction(counts: list[tuple[Tensor, int]]) -> float | None:
    if not counts:
        return None
    dead = int(torch.stack([d for d, _ in counts]).sum())
    return dead / sum(n for _, n in counts)
