"""One family (recipe) of the labeled set as its seeded runs: what every wave from the second on
makes the same way (a ``[[family]]`` of waves/wave2.toml … wave21.toml, read by wavefile.py).

A family is one recipe trained with seeds 0 and 1; seed 1 is also shown with sum-reduced losses
(dataset.py). A family on a tree of tasks.py reads it as ``imagefolder:<task>``: its source
(digits or MNIST) and description come from the task, it is augmented by cropping unless the
recipe says otherwise (flips would change a digit's class), and an MNIST task is read at the
size the wave gives.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # recipe.py and tasks.py beside this file

from recipe import Run  # noqa: E402
from tasks import TASKS  # noqa: E402

SEEDS = (0, 1)
SUM_VIEW_SEED = 1
MNIST_SIZE = 14  # MNIST tasks are downsampled to 14×14 unless a wave says otherwise
BUILTIN_DIGITS = "digits"  # the task name of the built-in 8×8 digits (no tree of tasks.py)


def family_runs(
    wave: int,
    label: str,
    task: str,
    name: str,
    how: str,
    *,
    optim: dict[str, Any],
    data: dict[str, Any] | None = None,
    model: dict[str, Any] | None = None,
    image_size: int = MNIST_SIZE,
    pretrained: str | None = None,
    formerly_heldout: bool | None = None,
) -> list[Run]:
    """The runs of one family, ids ``<task>-<label>-<name>-s<seed>``: *optim* without its seed,
    *image_size* for an MNIST task; *formerly_heldout* only for the second wave's families
    (their side of the split before wave 3, recipe.py)."""
    data = dict(data or {})
    source = "digits"
    if task != BUILTIN_DIGITS:  # a tree of tasks.py
        data.setdefault("augment", "crop")
        source = TASKS[task].source
        how = f"{TASKS[task].describe}: {how}"
        if source == "mnist":
            data["image_size"] = image_size
    return [
        Run(
            f"{task}-{label}-{name}-s{seed}", label, source, how,
            data=data, model=model or {}, optim={**optim, "seed": seed},
            task=None if task == BUILTIN_DIGITS else task, pretrained=pretrained,
            wave=wave, formerly_heldout=formerly_heldout, sum_view=seed == SUM_VIEW_SEED,
        )
        for seed in SEEDS
    ]

