"""One labeled run's recipe (`Run`), and how the set is split into a training and a held-out half.

The split is by WAVE (the one definition; ``Run.split``, recorded as ``split`` in every run's
JSON with ``split_by: "wave"``): the runs of the fourth wave (wave4.py, ``HELDOUT_WAVE``) are
the held-out half, every run of waves 1–3 is the training (development) half. Wave 4 was made
after wave 3 had been evaluated and the rules fixed on its misses, in families (recipes) that
differ from every family of waves 1–3 in at least one way the method could have fitted
(tasks, image size, subset size, label noise, batch size, optimizer and momentum, schedule,
epochs, regularisation, fine-tuning), and nobody diagnosed any of its runs before the single
evaluation of the held-out half: it measures generalization to new recipes.

Earlier sides are kept in the JSONs for the record (docs/diagnoser.md, "How the values were
set"), each evaluated and then learned from:

- ``split_before_wave4`` (``Run.split_before_wave4``), on the third wave's runs only: they
  were the held-out half from wave 3 until wave 4 (evaluated once, then rules were fixed on
  their misses); every run of waves 1–2 was already on the training side then;
- ``split_before_wave3`` (``Run.split_before_wave3``), on the runs of waves 1–2: the first
  wave held one run in three out by a hash of its id; the second held out by FAMILY
  (``Run.formerly_heldout``, decided per recipe before any run of the wave existed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HELDOUT_WAVE = 4  # the wave nobody diagnosed before it was held out
FORMER_HELDOUT_WAVE = 3  # the held-out half from wave 3 until wave 4
FORMER_HELDOUT_SHARE = 3  # first wave, before wave 3: one run in three (by id hash)


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


@dataclass(frozen=True)
class Run:
    """One labeled run: its id, the label its construction makes true, and its config.

    ``task`` names a tree of tasks.py (None: the built-in digits, or the first wave's MNIST
    tree); ``pretrained`` names a checkpoint of wave2.PRETRAINED to fine-tune from;
    ``wave`` is the wave that made it (1–4: the split); ``formerly_heldout`` is a
    second-wave family's side of the split before wave 3 (None: the first wave's hash rule,
    or a later wave's run, which had no such side); ``sum_view``: the set also shows this
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
    def split_before_wave4(self) -> Split | None:
        """A third-wave run's side before wave 4 existed: held out (None for the other waves:
        waves 1–2 were on the training side then, as now, and wave 4 had no earlier side)."""
        return Split.HELDOUT if self.wave == FORMER_HELDOUT_WAVE else None

    @property
    def split_before_wave3(self) -> Split | None:
        """The side a run of waves 1–2 was on before wave 3 existed (None for later waves)."""
        if self.wave >= FORMER_HELDOUT_WAVE:
            return None
        if self.formerly_heldout is not None:
            return Split.HELDOUT if self.formerly_heldout else Split.TRAIN
        digest = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return Split.HELDOUT if digest % FORMER_HELDOUT_SHARE == 0 else Split.TRAIN
