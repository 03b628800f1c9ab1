"""One optimizer for K packed members, each with its own learning rate, weight decay and
momentum (HFTA's fused optimizers, ideas only).

It runs torch's algorithms (``torch.optim.SGD``, ``Adam``, ``AdamW`` with their default
options) on the member-major parameters of a packed network, with every
hyperparameter a (K, 1) column broadcast over a (K, -1) view of each tensor, so K
members cost one set of kernels. Member m's trajectory is its unpacked optimizer's
within float rounding (the per-member factors are computed in float64 and rounded once,
as torch rounds its Python-float ones).

``active`` (K,) masks members out of a step: their gradients are replaced by zeros
before anything reads them (a diverged member's NaN never reaches its optimizer state)
and their learning rate is 0, so their weights stay exactly as they are.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor, nn

from trainer._packed_ops import member_view, select_members

# torch.optim.Adam / AdamW defaults; sweepdoc's configs do not expose them.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8

OptimizerKind = Literal["sgd", "adam", "adamw"]


class PackedOptimizer:
    """Fused SGD (momentum, optional Nesterov), Adam or AdamW over packed parameters."""

    def __init__(
        self,
        params: list[nn.Parameter],
        *,
        kind: OptimizerKind,
        lr: list[float],
        weight_decay: list[float],
        momentum: list[float],
        nesterov: bool,
    ):
        device = params[0].device
        self.params = params
        self.kind = kind
        self.k = len(lr)
        self.nesterov = nesterov
        self.lr = torch.tensor(lr, dtype=torch.float64, device=device)  # (K,) peak rates
        self.weight_decay = torch.tensor(weight_decay, dtype=torch.float64, device=device)
        self.momentum = torch.tensor(momentum, device=device)[:, None]  # (K, 1)
        self.uses_momentum = any(m > 0 for m in momentum)
        self.steps = 0
        self.state: list[dict[str, Tensor]] = [{} for _ in params]

    def step(self, scale: float, active: Tensor) -> None:
        """One step at ``lr · scale`` (the schedule's factor) for the *active* (K,) bool
        members; the others' weights do not change."""
        self.steps += 1
        lr64 = self.lr * scale * active  # (K,) float64, 0 for a frozen member
        lr = lr64.float()[:, None]  # (K, 1)
        wd = self.weight_decay.float()[:, None]
        keep = active[:, None]
        if self.kind == "sgd":
            for param, state in zip(self.params, self.state, strict=True):
                self._sgd(member_view(param.data, self.k), self._grad(param, keep), state, lr, wd)
            return
        b1, b2 = ADAM_BETAS
        step_size = (lr64 / (1 - b1**self.steps)).float()[:, None]  # lr / bias correction 1
        bc2_sqrt = math.sqrt(1 - b2**self.steps)
        decay = (1 - lr64 * self.weight_decay).float()[:, None]  # AdamW: decoupled decay
        for param, state in zip(self.params, self.state, strict=True):
            p, g = member_view(param.data, self.k), self._grad(param, keep)
            if self.kind == "adamw":
                p.mul_(decay)
            else:
                g = g.addcmul(p, wd)  # Adam: L2 penalty on the gradient
            if not state:
                state["exp_avg"] = torch.zeros_like(p)
                state["exp_avg_sq"] = torch.zeros_like(p)
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v.sqrt() / bc2_sqrt).add_(ADAM_EPS)
            p.sub_(m.mul(step_size).div_(denom))

    def _grad(self, param: nn.Parameter, keep: Tensor) -> Tensor:
        assert param.grad is not None, "step() after backward()"
        return torch.where(keep, member_view(param.grad, self.k), 0.0)  # (K, -1)

    def _sgd(self, p: Tensor, g: Tensor, state: dict[str, Tensor], lr: Tensor, wd: Tensor) -> None:
        g = g.addcmul(p, wd)  # L2 penalty, as torch.optim.SGD adds it
        if self.uses_momentum:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = g.clone()
            else:
                state["momentum_buffer"].mul_(self.momentum).add_(g)
            buf = state["momentum_buffer"]
            # A member with momentum 0 gets buf = g exactly: plain SGD, as torch does it.
            g = g.addcmul(buf, self.momentum) if self.nesterov else buf
        p.sub_(g * lr)

    def keep(self, keep: list[int]) -> PackedOptimizer:
        """The optimizer of a smaller pack (see ``Pack.keep``): the same members' state."""
        index = torch.tensor(keep, dtype=torch.long, device=self.lr.device)
        smaller = PackedOptimizer.__new__(PackedOptimizer)
        smaller.__dict__.update(self.__dict__)
        smaller.k = len(keep)
        smaller.lr = self.lr.index_select(0, index)
        smaller.weight_decay = self.weight_decay.index_select(0, index)
        smaller.momentum = self.momentum.index_select(0, index)
        smaller.state = [
            {name: select_members(t, self.k, index) for name, t in state.items()}
            for state in self.state
        ]
        return smaller

    def rebind(self, params: list[nn.Parameter]) -> None:
        """Point at a rebuilt network's parameters (same order and layout)."""
        self.params = params

    def load_members(self, optimizers: list[torch.optim.Optimizer]) -> None:
        """Take each member's state from its torch optimizer (one per member, in pack
        order, over parameters in this optimizer's order): the inverse of
        :meth:`member_state_dict`, for a pack continued from its members' epoch states."""
        per_member = [
            [opt.state[p] for g in opt.param_groups for p in g["params"]] for opt in optimizers
        ]
        for i, param in enumerate(self.params):
            slots = [states[i] for states in per_member]
            names = {name for slot in slots for name in slot if name != "step"}
            like = member_view(param.data, self.k)  # (K, block)
            self.state[i] = {
                name: torch.stack(
                    [
                        slot[name].reshape(-1) if name in slot else torch.zeros_like(like[0])
                        for slot in slots
                    ]
                ).to(like)
                for name in sorted(names)
            }
            steps = [int(slot["step"]) for slot in slots if "step" in slot]
            if steps:
                self.steps = steps[0]  # members of one pack have taken the same steps

    def member_state_dict(self, m: int, like: torch.optim.Optimizer) -> dict[str, Any]:
        """Member *m*'s state in the format of *like* (a torch optimizer of the same kind
        over that member's unpacked parameters, with its hyperparameters), so a best
        checkpoint or epoch state of a packed member loads into an unpacked run."""
        out = like.state_dict()
        shapes = [p.shape for group in like.param_groups for p in group["params"]]
        out["state"] = {}
        for i, (state, shape) in enumerate(zip(self.state, shapes, strict=True)):
            tensors = {
                name: t.reshape(self.k, -1)[m].reshape(shape).clone() for name, t in state.items()
            }
            if self.kind != "sgd" and tensors:
                # torch keeps Adam's step count per parameter as a float32 scalar tensor.
                tensors["step"] = torch.tensor(float(self.steps))
            if tensors:
                out["state"][i] = tensors
        return out
