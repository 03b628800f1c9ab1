"""K networks of one architecture as one packed network, and back.

A packed network is the unpacked one (``trainer._models.build_model``) with every layer
swapped for its fused version (``trainer._packed_ops``): same module tree, same
parameter names and order, same ``Network.forward``; only the shapes grow by K. So every
architecture the builders make (simple, vgg, resnet; norms batch, layer, none; any
activation, dropout) packs without a second copy of its structure, and member k's
weights come back out as a state dict ``build_model``'s network loads as it is (best
checkpoints and epoch states of packed members are ordinary ones).

Initialisation stays in one place: the members are built and initialised unpacked, then
their weights are stacked into the packed network.

On a CPU the packed feature maps are channels-last (``ChannelsLastConv2d``): torch's CPU
kernels for max pooling, BatchNorm and grouped convolutions walk a contiguous (N, K·C, H, W)
map one small H×W plane at a time, and on the digits' 8×8 maps with K·C = 80-160 channels
that made the packed step several times slower than the same work channels-last (per op,
on the development CPU: max pooling 1.5 ms against 0.07 ms, BatchNorm 0.48 against 0.12,
bench/pack_step.py). Parameters keep their contiguous layout, which the fused optimizer's
member views rely on; the values are the same, summed in another order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from trainer._models import Network, first_layer
from trainer._packed_ops import (
    ChannelsLastConv2d,
    MemberFlatten,
    PackedLinear,
    SharedDropout,
    select_members,
)

# Layers that act on each channel (or element) alone, so they work on K·C channels as
# they are: copied unchanged into the packed network.
_PER_CHANNEL = (
    nn.ReLU,
    nn.GELU,
    nn.Sigmoid,
    nn.Tanh,
    nn.LeakyReLU,
    nn.MaxPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Identity,
)


def _fused(module: nn.Module, k: int, *, shared_input: bool, channels_last: bool) -> nn.Module:
    """The fused version of one leaf layer (fresh, uninitialised weights)."""
    if isinstance(module, nn.Conv2d):
        if module.groups != 1:
            raise TypeError(f"cannot pack a grouped convolution ({module})")
        # The first convolution reads the one input batch all members share: a plain
        # convolution with K·C_out filters. Every later one is grouped, member by member.
        # With *channels_last* the first one also sets the layout every later map keeps
        # (an input of one channel is both layouts at once, so it cannot set it).
        conv = ChannelsLastConv2d if shared_input and channels_last else nn.Conv2d
        return conv(
            module.in_channels * (1 if shared_input else k),
            module.out_channels * k,
            module.kernel_size,  # type: ignore[arg-type]  # a tuple, as Conv2d stores it
            stride=module.stride,  # type: ignore[arg-type]
            padding=module.padding,  # type: ignore[arg-type]
            bias=module.bias is not None,
            groups=1 if shared_input else k,
        )
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(module.num_features * k, eps=module.eps, momentum=module.momentum)
    if isinstance(module, nn.GroupNorm):
        # K·G groups of C/G channels: each member's groups normalise exactly as before.
        return nn.GroupNorm(module.num_groups * k, module.num_channels * k, eps=module.eps)
    if isinstance(module, nn.Linear):
        if module.bias is None:
            raise TypeError(f"cannot pack a linear layer without bias ({module})")
        return PackedLinear(k, module.in_features, module.out_features)
    if isinstance(module, nn.Flatten):
        return MemberFlatten(k)
    if isinstance(module, nn.Dropout):
        return SharedDropout(module.p)
    if isinstance(module, _PER_CHANNEL):
        return copy.deepcopy(module)
    raise TypeError(f"cannot pack layer {type(module).__name__}")


def _swap_leaves(parent: nn.Module, k: int, first_conv: nn.Module, channels_last: bool) -> None:
    for name, child in list(parent.named_children()):
        if any(True for _ in child.children()):
            _swap_leaves(child, k, first_conv, channels_last)
        else:
            fused = _fused(child, k, shared_input=child is first_conv, channels_last=channels_last)
            setattr(parent, name, fused)


def packed_structure(template: Network, k: int, device: torch.device) -> Network:
    """A network shaped like *template* for K members on *device*, weights uninitialised;
    on a CPU its feature maps are channels-last (see the module's docstring).

    Built on the meta device, then given storage: a layer's constructor initialises its
    weights from torch's default generator, and drawing from it here would shift the
    dropout stream that the members share with their unpacked runs."""
    with torch.device("meta"):
        packed = copy.deepcopy(template).to("meta")
        _swap_leaves(packed, k, first_layer(packed), channels_last=device.type == "cpu")
    return packed.to_empty(device=device)


@dataclass
class Pack:
    """K members trained as one network: ``model`` and how to get each member back out."""

    model: Network  # the packed network; forward: (N, C, H, W) → (K, N, classes)
    template: Network  # one unpacked member: the structure to pack and unpack by
    k: int

    @classmethod
    def of(cls, members: list[Network]) -> Pack:
        """Pack initialised *members* (same architecture, on one device)."""
        template = members[0]
        model = packed_structure(template, len(members), _device_of(template))
        states = [m.state_dict() for m in members]
        packed_state = {
            key: _stack(key, [s[key] for s in states], target)
            for key, target in model.state_dict().items()
        }
        model.load_state_dict(packed_state)
        return cls(model=model, template=template, k=len(members))

    def member_state(self, m: int) -> dict[str, Tensor]:
        """Member *m*'s state dict, as its unpacked network names and shapes it (copies)."""
        shapes = {key: t.shape for key, t in self.template.state_dict().items()}
        out: dict[str, Tensor] = {}
        for key, tensor in self.model.state_dict().items():
            if tensor.dim() == 0:  # BatchNorm's num_batches_tracked: the same for all
                out[key] = tensor.detach().clone()
            else:
                out[key] = tensor.detach().reshape(self.k, -1)[m].reshape(shapes[key]).clone()
        return out

    def keep(self, keep: list[int]) -> Pack:
        """A smaller pack of the members at *keep* (indices into this pack), weights and
        norm statistics carried over."""
        index = torch.tensor(keep, dtype=torch.long, device=_device_of(self.model))
        model = packed_structure(self.template, len(keep), _device_of(self.model))
        model.load_state_dict(
            {
                key: t if t.dim() == 0 else select_members(t, self.k, index)
                for key, t in self.model.state_dict().items()
            }
        )
        model.train(self.model.training)
        return Pack(model=model, template=self.template, k=len(keep))


def _stack(key: str, tensors: list[Tensor], target: Tensor) -> Tensor:
    if target.dim() == 0:
        return tensors[0]
    flat = torch.stack([t.reshape(-1) for t in tensors])  # (K, block)
    if flat.numel() != target.numel():
        raise ValueError(f"{key}: {len(tensors)} members do not fill {tuple(target.shape)}")
    return flat.reshape(target.shape)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device
