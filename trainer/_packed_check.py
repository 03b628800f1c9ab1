"""Which runs may train as one packed network (``train_packed``), and why not.

Packed members share everything one forward pass shares: the dataset and its split, the
architecture, the batches (order, augmentation) and the dropout masks. So their configs
must be equal in every field but the optimizer's per-member settings below.

The seed is NOT among them. ``optim.seed`` seeds a run's initial weights, its data order,
its augmentation and its dropout masks at once. Packed members see the same batches, so
two members with different seeds could not both train on the batches their own seed
draws: at least one would follow another data order than its unpacked run, breaking
"same config and seed ⇒ the same curves as an unpacked run". A study's trials share the
study's seed, so they pack; repeats over seeds train in separate packs (or alone).
"""

from __future__ import annotations

from collections.abc import Sequence

from trainer._config import RunConfig

# The fields members may differ in: each has a per-member value in the fused optimizer
# (learning rate, weight decay, momentum) or the per-member gradient clipping.
PER_MEMBER_FIELDS = ("lr", "weight_decay", "momentum", "grad_clip")
# The architectures trainer._packed_models can fuse (every layer they use has a fused form).
PACKABLE_ARCHS = ("simple", "vgg", "resnet")


def can_pack(configs: Sequence[RunConfig]) -> str | None:
    """None when *configs* can train together in ``train_packed``, else the reason (naming
    the first member that cannot join member 0 and the fields that differ)."""
    if not configs:
        return "no runs to pack"
    first = configs[0]
    if first.model.arch not in PACKABLE_ARCHS:
        # Packing swaps each layer for its fused version; it knows the built-ins' layers.
        return (
            f"model.arch: only the built-in {', '.join(PACKABLE_ARCHS)} pack, "
            f"got {first.model.arch!r}"
        )
    if first.optim.init_from is not None:
        # Fine-tuning may resolve another architecture and freeze the backbone per run.
        return "optim.init_from: a run fine-tuned from a checkpoint trains alone"
    reference = _shared_fields(first)
    for index, config in enumerate(configs[1:], start=1):
        fields = _shared_fields(config)
        differing = sorted(
            k for k in reference.keys() | fields.keys() if reference.get(k) != fields.get(k)
        )
        if differing:
            why = (
                " (the seed sets the initial weights, data order, augmentation and dropout, "
                "which packed members share)"
                if "optim.seed" in differing
                else ""
            )
            return (
                f"run {index} differs from run 0 in {', '.join(differing)}{why}; packed runs "
                f"may differ only in optim.{', optim.'.join(PER_MEMBER_FIELDS)}"
            )
    return None


def _shared_fields(config: RunConfig) -> dict[str, object]:
    """Every setting packed members must share, as ``{"section.field": value}``."""
    out: dict[str, object] = {}
    for section, values in config.to_json().items():
        for name, value in values.items():
            if not (section == "optim" and name in PER_MEMBER_FIELDS):
                out[f"{section}.{name}"] = value
    return out
