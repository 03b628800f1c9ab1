"""Fine-tuning from an earlier run's checkpoint, following the seed's 2×2 table:

=============  ==========================================  ================================
               similar dataset                             different dataset
=============  ==========================================  ================================
little data    linear classifier on the last layer          try another model or collect
               (train only a new head)                      more data
lots of data   fine-tune all layers                         fine-tune all layers, or train
                                                            from scratch
=============  ==========================================  ================================
"""

from __future__ import annotations

from dataclasses import dataclass

from trainer._config import FinetuneStrategy

# Below this many training images a dataset counts as "little data". Fine-tuning every
# layer of even a small CNN on a few thousand images overfits quickly; CIFAR/MNIST-sized
# training sets (tens of thousands) are "lots".
SMALL_DATA_IMAGES = 10_000

# Datasets whose images look alike (same kind of content and statistics).
_FAMILIES = {
    "digits": "handwritten-digits",
    "mnist": "handwritten-digits",
    "fashion-mnist": "fashion-mnist",
    "cifar10": "natural-images",
    "cifar100": "natural-images",
}


@dataclass(frozen=True)
class FinetuneAdvice:
    """The table's cell for one situation and the strategy to apply."""

    strategy: FinetuneStrategy  # FULL or LINEAR_PROBE, never AUTO
    small_data: bool
    similar: bool
    advice: str  # the seed's words for the cell


def recommend_finetune(
    *, train_size: int, similar: bool, small_below: int = SMALL_DATA_IMAGES
) -> FinetuneAdvice:
    """The seed's fine-tuning table.

    ``train_size``: training images of the new task; ``similar``: whether they resemble
    the pretraining data. Little similar data → linear probe; lots of data → full
    fine-tuning. Little *different* data has no good fine-tuning option in the table
    ("try another model or collect more data"): the strategy is then ``full`` (features
    from a different domain are poor for a frozen backbone) and the advice says so.
    """
    if train_size < 1:
        raise ValueError(f"train_size must be >= 1, got train_size={train_size}")
    small = train_size < small_below
    if small and similar:
        return FinetuneAdvice(
            FinetuneStrategy.LINEAR_PROBE,
            small,
            similar,
            "little data, similar dataset: train a linear classifier on the last layer only",
        )
    if small:
        return FinetuneAdvice(
            FinetuneStrategy.FULL,
            small,
            similar,
            "little data, different dataset: fine-tuning is a weak option; try another "
            "model or collect more data",
        )
    if similar:
        return FinetuneAdvice(
            FinetuneStrategy.FULL,
            small,
            similar,
            "lots of data, similar dataset: fine-tune all layers",
        )
    return FinetuneAdvice(
        FinetuneStrategy.FULL,
        small,
        similar,
        "lots of data, different dataset: fine-tune all layers, or train from scratch",
    )


def datasets_similar(pretrained_on: str, target: str) -> bool:
    """Same dataset, or two datasets of the same family (e.g. digits and mnist).

    An image folder counts as similar only to the very same folder.
    """
    if pretrained_on == target:
        return True
    family = _FAMILIES.get(pretrained_on)
    return family is not None and family == _FAMILIES.get(target)
