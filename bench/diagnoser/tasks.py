"""The image tasks of the labeled set's second to twenty-first waves, each written once as an
ImageFolder tree.

The trainer reads any ImageFolder tree (``imagefolder:<name>``, its own train/val split), so
every task below is made from real images without touching the trainer:

- class subsets of the digits and of MNIST (2-class and 5-class tasks, log K ≠ log 10);
- ``rot40``: every digit shown at one of four rotations, the class being (digit, rotation):
  40 classes with a real ceiling below 100 % (a 6 turned 180° is a 9, a 0 or an 8 looks the
  same upside down), i.e. a hard task whose small gap is not underfitting;
- ``noisy25``: a quarter of ALL labels (training and validation) replaced by another class,
  as in a dataset labeled carelessly: the best possible validation accuracy is about 0.75,
  so a model that reaches it has converged, not underfit.

The waves' recipes are in waves/. The third wave (wave3.toml) adds tasks no earlier run trained
on: ``digits7`` (digits 0–6, 7 classes), ``mnist59`` (MNIST 5–9: the other half of the digits, 5
classes), ``mnist3`` (MNIST 2, 5 and 7, read at their full 28×28) and ``noisy15m`` (all ten
MNIST digits with 15 % of all labels replaced: a second noise ceiling, near 0.85, on another
source and level). The fourth wave (wave4.toml) adds four more: ``digits6`` (digits 4–9, 6
classes), ``mnist17`` (MNIST 1 vs 7: a 2-class task of two look-alike digits), ``mnist4`` (MNIST
0, 3, 6 and 9, 4 classes) and ``mnist8`` (MNIST 0–7, 8 classes). The fifth wave (wave5.toml)
adds ``digitsodd`` (the odd digits, 5 classes), ``mnist9`` (MNIST 1–9, 9 classes: a class count
no earlier task had), ``mnist35`` (MNIST 3 vs 5) and ``noisy10`` (the digits with 10 % of all
labels replaced: a third noise ceiling, near 0.90). The sixth wave (wave6.toml) adds
``digitseven`` (the even digits, 5 classes), ``digits358`` (digits 3, 5 and 8: three look-alike
classes), ``mnist6`` (MNIST 0, 2, 4, 5, 6 and 8) and ``noisy20m`` (all ten MNIST digits with
20 % of all labels replaced: a fourth noise ceiling, near 0.80). The seventh wave (wave7.toml) adds
``digits147`` (digits 1, 4 and 7), ``mnist27`` (MNIST 2 vs 7), ``mnist10`` (all ten MNIST digits
from the fresh images, clean: the task most practitioners start with) and ``noisy30`` (the
digits with 30 % of all labels replaced: a fifth noise ceiling, near 0.70). The eighth wave
(wave8.toml) adds ``digits06`` (digits 0 vs 6), ``digits2359`` (digits 2, 3, 5 and 9, 4
classes), ``mnist018`` (MNIST 0, 1 and 8, 3 classes) and ``noisy05`` (the digits with 5 % of
all labels replaced: a sixth noise ceiling, near 0.95, the few careless labels of a real set).
The ninth wave (wave9.toml) adds ``digits018`` (digits 0, 1 and 8: classes a horizontal flip
leaves alone, so a practitioner's crop+flip augmentation is sound), ``digits47`` (digits 4 vs 7),
``digits04`` (digits 0–4: the classes of the ``mnist5`` checkpoint in another source, for a
fine-tune across sources onto the SAME classes), ``mnist7c`` (MNIST 3–9, 7 classes: a class
count no earlier MNIST task had) and ``noisy40`` (the digits with 40 % of all labels replaced: a
seventh noise ceiling, near 0.60). The tenth wave (wave10.toml) adds ``digits17`` (digits 1 vs 7:
two look-alike strokes), ``digits9c`` (digits 0–8, 9 classes: a class count no earlier digits
task had), ``mnist258`` (MNIST 2, 5 and 8), ``mnist0to5`` (MNIST 0–5, 6 classes) and
``noisy35`` (the digits with 35 % of all labels replaced: an eighth noise ceiling, near 0.65).
The eleventh wave (wave11.toml) adds ``digits59`` (digits 5–9), ``digits12r`` (digits 2, 4 and
7 at four rotations: 12 classes, a class count no earlier task had, each rotation told apart),
``mnist08`` (MNIST 0 vs 8) and ``mnist369`` (MNIST 3, 6 and 9). The twelfth wave (wave12.toml)
adds ``digits8c`` (digits 2–9: 8 classes, a class count no earlier digits task had),
``digits39`` (digits 3 vs 9), ``mnist147`` (MNIST 1, 4 and 7) and ``mnist2to6`` (MNIST 2–6, 5
classes). The thirteenth wave (wave13.toml) adds ``digits25`` (digits 2 vs 5), ``digits0568``
(digits 0, 5, 6 and 8: four round shapes), ``mnist56`` (MNIST 5 vs 6), ``mnistodd`` (the odd
MNIST digits, 5 classes) and ``noisy27`` (the digits with 27 % of all labels replaced: a ninth
noise ceiling, near 0.73). The fourteenth wave (wave14.toml) adds ``digits18`` (digits 1 vs
8), ``digits036`` (digits 0, 3 and 6), ``mnist79`` (MNIST 7 vs 9: two look-alike digits),
``mnist0246`` (MNIST 0, 2, 4 and 6) and ``noisy13`` (the digits with 13 % of all labels
replaced: a tenth noise ceiling, near 0.87). The fifteenth wave (wave15.toml) adds ``digits26``
(digits 2 vs 6), ``digits135`` (digits 1, 3 and 5), ``mnist14`` (MNIST 1 vs 4), ``mnisteven``
(the even MNIST digits, 5 classes) and ``noisy18`` (the digits with 18 % of all labels replaced:
an eleventh noise ceiling, near 0.82). The sixteenth wave (wave16.toml) adds ``digits49`` (digits
4 vs 9), ``digits1279`` (digits 1, 2, 7 and 9: four stroke-like shapes), ``mnist23`` (MNIST 2 vs
3), ``mnist4to8`` (MNIST 4–8, 5 classes: the class count of the ``mnist5`` checkpoint, for a
fine-tune onto OTHER classes of the same source) and ``noisy12m`` (all ten MNIST digits with 12 %
of all labels replaced: a twelfth noise ceiling, near 0.88). The seventeenth wave (wave17.toml)
adds ``digits57`` (digits 5 vs 7), ``digits1to6`` (digits 1–6, 6 classes), ``mnist69`` (MNIST 6
vs 9: two classes like the ``mnist2`` checkpoint's 3 vs 8, for fine-tunes onto OTHER classes of
the same source), ``mnist0to8`` (MNIST 0–8, 9 classes) and ``noisy22m1368`` (MNIST 1, 3, 6 and 8
with 22 % of all labels replaced: a thirteenth noise ceiling, near 0.78, the first on a class
subset rather than all ten digits). The eighteenth wave (wave18.toml) adds ``digits68`` (digits 6
vs 8: two classes like the ``mnist2`` checkpoint's, for a fine-tune across sources onto OTHER
classes), ``digits3to7`` (digits 3–7, 5 classes), ``mnist48`` (MNIST 4 vs 8, read at 8×8 like
the ``mnist2`` checkpoint), ``mnist0to6`` (MNIST 0–6, 7 classes) and ``noisy17even`` (the even
digits with 17 % of all labels replaced: a fourteenth noise ceiling, near 0.83, the first on a
class subset of the digits). The nineteenth wave (wave19.toml) adds ``digits09`` (digits 0 vs
9), ``digits2to8`` (digits 2–8, 7 classes), ``mnist37`` (MNIST 3 vs 7, read at 8×8 like the
``mnist2`` checkpoint, for a linear probe of it onto OTHER classes of the same source),
``mnist1to6`` (MNIST 1–6, 6 classes) and ``noisy19m057`` (MNIST 0, 5 and 7 with 19 % of all
labels replaced: a fifteenth noise ceiling, near 0.81, the first on a 3-class task). The
twentieth wave (wave20.toml) adds ``digits27`` (digits 2 vs 7), ``digits1to8`` (digits 1–8, 8
classes), ``mnist06`` (MNIST 0 vs 6), ``mnist1to5`` (MNIST 1–5, 5 classes: the class count of
the ``mnist5`` checkpoint, read at its 14×14, for a fine-tune onto classes shifted by one) and
``noisy16d0to5`` (digits 0–5 with 16 % of all labels replaced: a sixteenth noise ceiling, near
0.84, the first on a 6-class task). The twenty-first wave (wave21.toml) adds ``digits35``
(digits 3 vs 5), ``digits2to6`` (digits 2–6, 5 classes), ``mnist29`` (MNIST 2 vs 9),
``mnist3to7`` (MNIST 3–7, 5 classes: the class count of the ``mnist5`` checkpoint, read at its
14×14, for a fine-tune onto classes shifted by three) and ``noisy14d3to9`` (digits 3–9 with
14 % of all labels replaced: a seventeenth noise ceiling, near 0.86, the first on a 7-class
task).

The MNIST tasks draw from images 6,000–9,999 of the 10k split, which the first wave's MNIST
tree (images 0–5,999) never saw; the ``pre-`` tasks, on which the fine-tuning families'
checkpoints are trained, draw from images 0–5,999, so fine-tuning always meets new images.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages

from bench._mnist import Item, digits_images, mnist_images, write_tree  # noqa: E402

# Where every tree is written (one sub-folder per task); the trainer's data_dir.
DATA_ROOT = Path("/tmp/sweepdoc-diagnoser-data")
VAL_SHARE = 0.25  # of each task's images, stratified by class
MNIST_FRESH_FROM = 6_000  # first MNIST image no first-wave run or checkpoint trained on
ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class Task:
    """A classification task made from real images: which source, classes and corruption."""

    name: str  # the tree's folder under DATA_ROOT and the run ids' task part
    source: str  # digits | mnist
    classes: tuple[int, ...]  # the source classes kept (0–9)
    rotate: bool = False  # class = (digit, one of ROTATIONS): 4× the classes
    noise: float = 0.0  # share of ALL labels (train and val) replaced by another class
    limit: int | None = None  # at most this many images (MNIST: the task's budget)
    pretraining: bool = False  # MNIST: draw from images 0–5,999 (a checkpoint's task)

    @property
    def num_classes(self) -> int:
        return len(self.classes) * (len(ROTATIONS) if self.rotate else 1)

    @property
    def describe(self) -> str:
        parts = [f"{self.source} classes {','.join(map(str, self.classes))}"]
        if self.rotate:
            parts.append("x 4 rotations")
        if self.noise:
            parts.append(f"{self.noise:.0%} of all labels noisy")
        return f"{self.num_classes}-class task ({' '.join(parts)})"


TASKS = {
    task.name: task
    for task in (
        Task("digits2", "digits", (3, 8)),
        Task("rot40", "digits", tuple(range(10)), rotate=True),
        Task("noisy25", "digits", tuple(range(10)), noise=0.25),
        Task("mnist2", "mnist", (4, 9), limit=1600),
        Task("mnist5", "mnist", (0, 1, 2, 3, 4), limit=2000),
        # third wave
        Task("digits7", "digits", tuple(range(7))),
        Task("mnist59", "mnist", (5, 6, 7, 8, 9), limit=2000),
        Task("mnist3", "mnist", (2, 5, 7), limit=1200),
        Task("noisy15m", "mnist", tuple(range(10)), noise=0.15, limit=2500),
        # fourth wave
        Task("digits6", "digits", (4, 5, 6, 7, 8, 9)),
        Task("mnist17", "mnist", (1, 7), limit=1200),
        Task("mnist4", "mnist", (0, 3, 6, 9), limit=1600),
        Task("mnist8", "mnist", tuple(range(8)), limit=2000),
        # fifth wave
        Task("digitsodd", "digits", (1, 3, 5, 7, 9)),
        Task("mnist9", "mnist", tuple(range(1, 10)), limit=2000),
        Task("mnist35", "mnist", (3, 5), limit=1200),
        Task("noisy10", "digits", tuple(range(10)), noise=0.10),
        # sixth wave
        Task("digitseven", "digits", (0, 2, 4, 6, 8)),
        Task("digits358", "digits", (3, 5, 8)),
        Task("mnist6", "mnist", (0, 2, 4, 5, 6, 8), limit=1800),
        Task("noisy20m", "mnist", tuple(range(10)), noise=0.20, limit=2000),
        # seventh wave
        Task("digits147", "digits", (1, 4, 7)),
        Task("mnist27", "mnist", (2, 7), limit=1600),
        Task("mnist10", "mnist", tuple(range(10)), limit=2500),
        Task("noisy30", "digits", tuple(range(10)), noise=0.30),
        # eighth wave
        Task("digits06", "digits", (0, 6)),
        Task("digits2359", "digits", (2, 3, 5, 9)),
        Task("mnist018", "mnist", (0, 1, 8), limit=1200),
        Task("noisy05", "digits", tuple(range(10)), noise=0.05),
        # ninth wave
        Task("digits018", "digits", (0, 1, 8)),
        Task("digits47", "digits", (4, 7)),
        Task("digits04", "digits", (0, 1, 2, 3, 4)),
        Task("mnist7c", "mnist", tuple(range(3, 10)), limit=1400),
        Task("noisy40", "digits", tuple(range(10)), noise=0.40),
        # tenth wave
        Task("digits17", "digits", (1, 7)),
        Task("digits9c", "digits", tuple(range(9))),
        Task("mnist258", "mnist", (2, 5, 8), limit=1200),
        Task("mnist0to5", "mnist", tuple(range(6)), limit=1500),
        Task("noisy35", "digits", tuple(range(10)), noise=0.35),
        # eleventh wave
        Task("digits59", "digits", (5, 6, 7, 8, 9)),
        Task("digits12r", "digits", (2, 4, 7), rotate=True),
        Task("mnist08", "mnist", (0, 8), limit=1200),
        Task("mnist369", "mnist", (3, 6, 9), limit=1200),
        # twelfth wave
        Task("digits8c", "digits", tuple(range(2, 10))),
        Task("digits39", "digits", (3, 9)),
        Task("mnist147", "mnist", (1, 4, 7), limit=1200),
        Task("mnist2to6", "mnist", tuple(range(2, 7)), limit=1500),
        # thirteenth wave
        Task("digits25", "digits", (2, 5)),
        Task("digits0568", "digits", (0, 5, 6, 8)),
        Task("mnist56", "mnist", (5, 6), limit=1200),
        Task("mnistodd", "mnist", (1, 3, 5, 7, 9), limit=1500),
        Task("noisy27", "digits", tuple(range(10)), noise=0.27),
        # fourteenth wave
        Task("digits18", "digits", (1, 8)),
        Task("digits036", "digits", (0, 3, 6)),
        Task("mnist79", "mnist", (7, 9), limit=1200),
        Task("mnist0246", "mnist", (0, 2, 4, 6), limit=1600),
        Task("noisy13", "digits", tuple(range(10)), noise=0.13),
        # fifteenth wave
        Task("digits26", "digits", (2, 6)),
        Task("digits135", "digits", (1, 3, 5)),
        Task("mnist14", "mnist", (1, 4), limit=1200),
        Task("mnisteven", "mnist", (0, 2, 4, 6, 8), limit=1500),
        Task("noisy18", "digits", tuple(range(10)), noise=0.18),
        # sixteenth wave
        Task("digits49", "digits", (4, 9)),
        Task("digits1279", "digits", (1, 2, 7, 9)),
        Task("mnist23", "mnist", (2, 3), limit=1200),
        Task("mnist4to8", "mnist", (4, 5, 6, 7, 8), limit=1500),
        Task("noisy12m", "mnist", tuple(range(10)), noise=0.12, limit=2000),
        # seventeenth wave
        Task("digits57", "digits", (5, 7)),
        Task("digits1to6", "digits", tuple(range(1, 7))),
        Task("mnist69", "mnist", (6, 9), limit=1200),
        Task("mnist0to8", "mnist", tuple(range(9)), limit=1800),
        Task("noisy22m1368", "mnist", (1, 3, 6, 8), noise=0.22, limit=1600),
        # eighteenth wave
        Task("digits68", "digits", (6, 8)),
        Task("digits3to7", "digits", tuple(range(3, 8))),
        Task("mnist48", "mnist", (4, 8), limit=1200),
        Task("mnist0to6", "mnist", tuple(range(7)), limit=1400),
        Task("noisy17even", "digits", (0, 2, 4, 6, 8), noise=0.17),
        # nineteenth wave
        Task("digits09", "digits", (0, 9)),
        Task("digits2to8", "digits", tuple(range(2, 9))),
        Task("mnist37", "mnist", (3, 7), limit=1200),
        Task("mnist1to6", "mnist", tuple(range(1, 7)), limit=1500),
        Task("noisy19m057", "mnist", (0, 5, 7), noise=0.19, limit=1200),
        # twentieth wave
        Task("digits27", "digits", (2, 7)),
        Task("digits1to8", "digits", tuple(range(1, 9))),
        Task("mnist06", "mnist", (0, 6), limit=1200),
        Task("mnist1to5", "mnist", tuple(range(1, 6)), limit=1500),
        Task("noisy16d0to5", "digits", tuple(range(6)), noise=0.16),
        # twenty-first wave
        Task("digits35", "digits", (3, 5)),
        Task("digits2to6", "digits", tuple(range(2, 7))),
        Task("mnist29", "mnist", (2, 9), limit=1200),
        Task("mnist3to7", "mnist", tuple(range(3, 8)), limit=1500),
        Task("noisy14d3to9", "digits", tuple(range(3, 10)), noise=0.14),
        # The fine-tuning families' checkpoints are trained on other MNIST images, with the
        # target task's class count (a checkpoint's head must match it to load).
        Task(
            "pre-mnist-rot40", "mnist", tuple(range(10)), rotate=True, limit=4000, pretraining=True
        ),
        Task("pre-mnist2", "mnist", (3, 8), limit=1600, pretraining=True),
        Task("pre-mnist5", "mnist", (0, 1, 2, 3, 4), limit=3000, pretraining=True),
    )
}


def _items(task: Task, mnist_source: Path | None) -> list[Item]:
    if task.source == "digits":
        images, labels = digits_images()
    else:
        if mnist_source is None:
            raise ValueError(f"task {task.name!r} needs the MNIST folder (--mnist)")
        images, labels = mnist_images(mnist_source)
        drawn = slice(None, MNIST_FRESH_FROM) if task.pretraining else slice(MNIST_FRESH_FROM, None)
        images, labels = images[drawn], labels[drawn]
    keep = np.isin(labels, task.classes)
    images, labels = images[keep][: task.limit], labels[keep][: task.limit]
    rng = np.random.default_rng(0)  # a task is one fixed dataset, whatever the run's seed
    names: list[str] = []
    pixels: list[np.ndarray] = []
    for image, label in zip(images, labels, strict=True):
        if task.rotate:
            turns = int(rng.integers(len(ROTATIONS)))
            image = np.rot90(image, k=turns)
            names.append(f"{label}-r{ROTATIONS[turns]:03d}")
        else:
            names.append(str(label))
        pixels.append(image)
    if task.noise:
        # Careless labeling: the image keeps its pixels, its label becomes another class.
        pool = sorted(set(names))
        for index in np.flatnonzero(rng.random(len(names)) < task.noise):
            others = [n for n in pool if n != names[index]]
            names[index] = others[int(rng.integers(len(others)))]
    return list(zip(names, pixels, strict=True))


def _split(items: list[Item]) -> tuple[list[Item], list[Item]]:
    """Stratified: the last VAL_SHARE of each class's images (in a fixed shuffle) is val."""
    rng = np.random.default_rng(1)
    order = rng.permutation(len(items))
    by_class: dict[str, list[int]] = {}
    for index in order:
        by_class.setdefault(items[index][0], []).append(int(index))
    train: list[Item] = []
    val: list[Item] = []
    for indices in by_class.values():
        cut = len(indices) - max(1, round(VAL_SHARE * len(indices)))
        train += [items[i] for i in indices[:cut]]
        val += [items[i] for i in indices[cut:]]
    return train, val


def export_task(task: Task, mnist_source: Path | None, root: Path = DATA_ROOT) -> Path:
    """Write *task*'s tree under *root* (once; a finished tree is reused) and return *root*,
    the data_dir under which ``imagefolder:<task.name>`` resolves."""
    train, val = _split(_items(task, mnist_source))
    write_tree(root / task.name, train=train, val=val, marker=f"{task} train={len(train)}")
    return root
