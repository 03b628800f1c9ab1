"""How much accelerator memory a pack of K members needs, roughly: enough to choose K
on a GPU before training (``max_pack: auto``), not a promise.

Per member: its float32 parameters, their gradients and the optimizer's state (SGD's
momentum buffer, Adam's two moments), plus the activations one training step keeps for
backward and their gradients (measured by running the network once on the meta device,
which computes shapes only) at the run's batch size, or, when larger, evaluation's peak:
no activation is kept there, but its batches are larger (``EVAL_BATCH`` images, 16× the
default batch size), so its largest layer output and the input of the layer making it.
The dataset is not counted: one copy, whatever K is.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainer._config import IMAGEFOLDER_PREFIX, RunConfig
from trainer._errors import ConfigError
from trainer._loop import EVAL_BATCH
from trainer._models import build_model

FLOAT_BYTES = 4
# Tensors per parameter besides itself: its gradient, and the optimizer's state.
OPTIMIZER_SLOTS = {"sgd": 2, "adam": 3, "adamw": 3}
# Per layer output: the tensor kept for backward and its gradient. Every leaf's output is
# counted, in-place activations too, which covers the temporaries (norm statistics,
# pooling indices, the allocator's rounding) without a third copy.
ACTIVATION_FACTOR = 2
# (C, H, W) and classes of the built-in datasets, to estimate without reading them.
BUILTIN_SHAPES: dict[str, tuple[tuple[int, int, int], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion-mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


def estimate_pack_bytes(
    config: RunConfig,
    k: int,
    *,
    input_shape: tuple[int, int, int] | None = None,
    num_classes: int | None = None,
) -> int:
    """Bytes of device memory a pack of *k* runs of *config* needs to train, roughly.

    *input_shape* (C, H, W) and *num_classes* default to the built-in dataset's; an image
    folder needs them given (else :class:`ConfigError`)."""
    if k < 1:
        raise ConfigError(f"k: must be at least 1, got {k}")
    shape, classes = _dataset_shape(config, input_shape, num_classes)
    c, h, w = shape
    with torch.device("meta"):
        model = build_model(config.model, in_channels=c, image_size=min(h, w), num_classes=classes)
        params = sum(p.numel() for p in model.parameters())
        per_image, largest = _activations_per_image(model, shape)
    slots = OPTIMIZER_SLOTS[config.optim.optimizer]
    training = ACTIVATION_FACTOR * per_image * config.optim.batch_size
    evaluation = 2 * largest * EVAL_BATCH
    return k * FLOAT_BYTES * (params * (1 + slots) + max(training, evaluation))


def known_image_side(config: RunConfig) -> int | None:
    """The smaller side of *config*'s images when it is known without reading the data (a
    built-in dataset, an image folder resized to ``image_size``), else None."""
    shape = _known_input_shape(config)
    return None if shape is None else min(shape[1:])


def _known_input_shape(config: RunConfig) -> tuple[int, int, int] | None:
    """*config*'s input shape when it is known without reading the data: a built-in
    dataset's, or an image folder's resized to ``image_size`` (3 channels)."""
    known = BUILTIN_SHAPES.get(config.data.dataset)
    if known is not None:
        return known[0]
    size = config.data.image_size
    if config.data.dataset.startswith(IMAGEFOLDER_PREFIX) and size is not None:
        return (3, size, size)
    return None


def _dataset_shape(
    config: RunConfig, input_shape: tuple[int, int, int] | None, num_classes: int | None
) -> tuple[tuple[int, int, int], int]:
    known = BUILTIN_SHAPES.get(config.data.dataset)
    shape = input_shape or _known_input_shape(config)
    classes = num_classes or (known[1] if known else None)
    if shape is None or not classes:
        raise ConfigError(
            f"input_shape, num_classes: needed to estimate dataset {config.data.dataset!r} "
            "(only the built-in datasets' shapes are known)"
        )
    return shape, classes


def _activations_per_image(model: nn.Module, shape: tuple[int, int, int]) -> tuple[int, int]:
    """(elements all leaf layers output, elements of the largest output) for one image
    (one forward pass on the meta device)."""
    total = largest = 0

    def count(_module: nn.Module, _inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total, largest
        total += output.numel()
        largest = max(largest, output.numel())

    leaves = [m for m in model.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        model(torch.empty(1, *shape, device="meta"))
    finally:
        for handle in handles:
            handle.remove()
    return total, largest
