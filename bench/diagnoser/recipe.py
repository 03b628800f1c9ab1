"""One labeled run's recipe (`Run`), and how the set is split into a training and a held-out half.

The split is by WAVE (the one definition; ``Run.split``, recorded as ``split`` in every run's
JSON with ``split_by: "wave"``): the runs of the third wave (wave3.py) are the held-out half,
every run of waves 1 and 2 is the training (development) half. Wave 3 was made after the
diagnoser's method was written, in families (recipes) that differ from every earlier family
in at least one way the method could have fitted (tasks, image size, batch size, optimizer,
schedule, epochs, regularisation), and nobody diagnosed any of its runs before the single
evaluation of the held-out half: it measures generalization to new recipes.

The split before wave 3 is kept in each wave-1/2 JSON as ``split_before_wave3``
(``Run.split_before_wave3``) for the record, since it was evaluated four times and the method
was informed by it (docs/diagnoser.md, "How the values were set"):

- first wave (wave1.py): one run in three held out by a hash of its id;
- second wave (wave2.py): held out by FAMILY (``Run.formerly_heldout``, decided per recipe
  before any run of the wave existed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HELDOUT_WAVE = 3  # the wave nobody diagnosed before it was held out
FORMER_HELDOUT_SHARE = 3  # first wave, before wave 3: one run in three (by id hash)


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


@dataclass(frozen=True)
class Run:
    """One labeled run: its id, the label its construction makes true, and its config.

    ``task`` names a tree of tasks.py (None: the built-in digits, or the first wave's MNIST
    tree); ``pretrained`` names a checkpoint of wave2.PRETRAINED to fine-tune from;
    ``wave`` is the wave that made it (1, 2 or 3: the split); ``formerly_heldout`` is a
    second-wave family's side of the split before wave 3 (None: the first wave's hash rule,
    or a third-wave run, which had no earlier side); ``sum_view``: the set also shows this
    run as logged with sum-reduced losses.
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
    wave: int = 1
    formerly_heldout: bool | None = None
    sum_view: bool = False

    @property
    def family(self) -> str:
        """The recipe without its seed: the id up to its ``-s<seed>`` suffix."""
        return self.id.rsplit("-s", 1)[0]

    @property
    def split(self) -> Split:
        return Split.HELDOUT if self.wave == HELDOUT_WAVE else Split.TRAIN

    @property
    def split_before_wave3(self) -> Split | None:
        """The side this run was on before wave 3 existed (None for a third-wave run)."""
        if self.wave == HELDOUT_WAVE:
            return None
        if self.formerly_heldout is not None:
            return Split.HELDOUT if self.formerly_heldout else Split.TRAIN
        digest = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return Split.HELDOUT if digest % FORMER_HELDOUT_SHARE == 0 else Split.TRAIN
