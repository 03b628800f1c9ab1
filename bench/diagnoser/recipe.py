"""One labeled run's recipe (`Run`), and how the set is split into a training and a held-out half.

Two waves of runs, two split rules, both fixed before any run of the wave existed:

- first wave (wave1.py): one run in three held out by a hash of its id. Its thresholds were
  tuned on its training half, so these splits never change.
- second wave (wave2.py): held out by FAMILY (the recipe without its seed): every seed of a
  held-out recipe is held out, so the held-out half has recipes, tasks and schedules that
  nothing fitted on the training half ever saw (a hash per run would put a seed of nearly
  every recipe in each half, and the held-out numbers would again measure the generator).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HELDOUT_SHARE = 3  # first wave: one run in three (by id hash) is held out


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


@dataclass(frozen=True)
class Run:
    """One labeled run: its id, the label its construction makes true, and its config.

    ``task`` names a tree of tasks.py (None: the built-in digits, or the first wave's MNIST
    tree); ``pretrained`` names a checkpoint of wave2.PRETRAINED to fine-tune from;
    ``heldout`` is the family's side of the split (None: the first wave's hash rule);
    ``sum_view``: the set also shows this run as logged with sum-reduced losses.
    """

    id: str
    label: str
    dataset: str  # digits | mnist: where the images come from
    how: str
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, Any] = field(default_factory=dict)
    task: str | None = None
    pretrained: str | None = None
    heldout: bool | None = None
    sum_view: bool = False

    @property
    def family(self) -> str:
        """The recipe without its seed: the id up to its ``-s<seed>`` suffix."""
        return self.id.rsplit("-s", 1)[0]

    @property
    def wave(self) -> int:
        return 1 if self.heldout is None else 2

    @property
    def split(self) -> Split:
        if self.heldout is not None:
            return Split.HELDOUT if self.heldout else Split.TRAIN
        digest = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return Split.HELDOUT if digest % HELDOUT_SHARE == 0 else Split.TRAIN
