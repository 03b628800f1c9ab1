"""One labeled run's recipe (`Run`), and how the set is split into a training and a held-out half.

The split is by WAVE (the one definition; ``Run.split``, recorded as ``split`` in every run's
JSON with ``split_by: "wave"``): the runs of the twenty-first wave (waves/wave21.toml,
``HELDOUT_WAVE``) are the held-out half, every run of waves 1–20 is the training (development)
half. Wave 21 was made after wave 20 had been evaluated once and its misses read, without
diagnosing a run of it, in families (recipes) that differ from every family of waves 1–20 in at
least one way the method could have fitted, and nobody diagnosed any of its runs before the
single evaluation of the held-out half: it measures generalization to new recipes.

Each earlier held-out side was evaluated and then learned from; one fact per run records it
(docs/diagnoser.md, "How the values were set"): ``heldout_until_wave`` (``Run.heldout_until_wave``)
is the wave that replaced the run's held-out side, absent for a run never held out:

- waves 1–2 until wave 3 (``heldout_until_wave: 3``): the first wave held one run in three out
  by a hash of its id (``FIRST_WAVE_HELDOUT_SHARE``); the second held out by FAMILY
  (``Run.formerly_heldout``, decided per recipe before any run of the wave existed); the other
  runs of those waves were never held out;
- from wave 3 on, each new wave was held out WHOLE until the next wave replaced it: wave 3
  until wave 4, wave 4 until wave 5, …, wave 19 until wave 20, wave 20 until wave 21.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

HELDOUT_WAVE = 21  # the wave nobody diagnosed before it was held out
WHOLE_WAVES_HELDOUT_FROM = 3  # from this wave on, each wave was held out whole until the next
FIRST_WAVE_HELDOUT_SHARE = 3  # first wave, before wave 3: one run in three (by id hash)


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


@dataclass(frozen=True)
class Run:
    """One labeled run: its id, the label its construction makes true, and its config.

    ``task`` names a tree of tasks.py (None: the built-in digits, or the first wave's MNIST
    tree); ``pretrained`` names a checkpoint of waves/checkpoints.toml to fine-tune from;
    ``wave`` is the wave that made it (the split); ``formerly_heldout`` is a
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
    def heldout_until_wave(self) -> int | None:
        """The wave that replaced this run's held-out side (None: never held out, or held out
        now)."""
        if self.wave >= HELDOUT_WAVE:
            return None
        if self.wave >= WHOLE_WAVES_HELDOUT_FROM:
            return self.wave + 1
        return WHOLE_WAVES_HELDOUT_FROM if self._heldout_before_wave3 else None

    @property
    def _heldout_before_wave3(self) -> bool:
        """A run of waves 1–2: its family's side (wave 2), else the first wave's id hash."""
        if self.formerly_heldout is not None:
            return self.formerly_heldout
        digest = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return digest % FIRST_WAVE_HELDOUT_SHARE == 0
