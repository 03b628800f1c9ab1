"""Which curve a CSV column or TensorBoard tag stands for, from its name.

A name is split into lower-case words (``train_loss_epoch`` → train, loss, epoch;
``Loss/val`` → loss, val; ``valLoss`` → val, loss) and read as a split (train; val, valid,
validation, eval; test, used only when nothing says val), a kind (loss; acc, accuracy; lr,
learning rate) and a phase (``epoch``: one value per epoch; ``step``: one per step). A name
with any other word (``top5``, ``vs``, ``iterations``) is a different metric: it is reported,
never guessed. The exact curves keys and Keras' names win over everything else.

Every key of a log ends up mapped or in the ignored list with its reason: nothing is dropped
without a word, and ``--map CURVE=KEY`` overrides the choice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from studies.runlogs._model import Aggregation, ChosenBy, IgnoredKey, IgnoreReason, RunLogError
from trainer._curves import CURVE_KEYS

# Names that number the rows (Lightning's epoch and step, Keras' epoch, wall times).
INDEX_NAMES: Final = frozenset(
    {"epoch", "step", "global_step", "iteration", "iter", "time", "wall_time", "walltime",
     "timestamp", "created_at"}
)
# Keras' history and CSVLogger names, and the curves keys themselves: taken as they are.
EXACT: Final[Mapping[str, str]] = {
    **{key: key for key in CURVE_KEYS},
    "loss": "train_loss",
    "accuracy": "train_acc",
    "acc": "train_acc",
    "val_accuracy": "val_acc",
    "learning_rate": "lr",
}
_SPLITS: Final = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "eval": "val", "evaluation": "val",
    "test": "test",
}
_KINDS: Final = {"loss": "loss", "acc": "acc", "accuracy": "acc", "lr": "lr"}
_PHASES: Final = {"epoch", "step"}
# Words of other metrics: such a name is reported as an unrecognised metric, not as noise.
_OTHER_METRIC_WORDS: Final = frozenset(
    {"mse", "mae", "rmse", "error", "err", "f1", "auc", "top1", "top5", "precision", "recall",
     "iou", "perplexity", "ppl", "nll", "score", "metric"}
)
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NOT_WORD = re.compile(r"[^0-9a-z]+")
# A key's rank: lower wins. (split: val/train 0, test 1; phase: epoch 0, none 1, step 2;
# extra words, for lr only: an optimizer's or parameter group's name).
Rank = tuple[int, int, int]
EXACT_RANK: Final[Rank] = (-1, 0, 0)


def words(key: str) -> list[str]:
    """*key* split into lower-case words (separators, camelCase and folders all split)."""
    return [w for w in _NOT_WORD.split(_CAMEL.sub("_", key).lower()) if w]


def aggregation_of(key: str) -> Aggregation:
    """How *key*'s values within one epoch become one: a per-epoch key's last value (Lightning's
    ``*_epoch``, Keras' ``epoch_*``), else the mean of its per-step values."""
    return Aggregation.LAST if "epoch" in words(key) else Aggregation.MEAN


@dataclass(frozen=True)
class Candidate:
    """A key that can fill *curve*, and how strongly (lower rank wins)."""

    curve: str
    rank: Rank


@dataclass(frozen=True)
class Rejection:
    """A key that fills no curve by its name."""

    reason: IgnoreReason
    detail: str


def recognise(key: str) -> Candidate | Rejection:
    """The curve *key* stands for by its name, or why it stands for none."""
    if key in EXACT:
        return Candidate(EXACT[key], EXACT_RANK)
    parts = words(key)
    if key.lower() in INDEX_NAMES or (len(parts) == 1 and parts[0] in INDEX_NAMES):
        return Rejection(IgnoreReason.INDEX, "numbers the rows; epochs are read from it")
    if key == "hp_metric":
        return Rejection(IgnoreReason.NOT_A_METRIC, "Lightning's hyper-parameter placeholder")
    joined = "_".join(parts)
    if "learning_rate" in joined:  # two words that mean lr
        parts = [w for w in parts if w not in ("learning", "rate")] + ["lr"]
    kinds = {_KINDS[w] for w in parts if w in _KINDS}
    splits = {_SPLITS[w] for w in parts if w in _SPLITS}
    phases = [w for w in parts if w in _PHASES]
    extra = [w for w in parts if w not in _KINDS and w not in _SPLITS and w not in _PHASES]
    use_map = "pass --map CURVE=KEY (the API's \"map\") to use it"
    if len(kinds) != 1:
        if kinds or _OTHER_METRIC_WORDS.intersection(parts):
            return Rejection(
                IgnoreReason.UNRECOGNISED_METRIC,
                f"a metric, but not one of the curves; {use_map}",
            )
        return Rejection(IgnoreReason.NOT_A_METRIC, f"not a curve's name; {use_map}")
    (kind,) = kinds
    phase_rank = 0 if "epoch" in phases else 2 if "step" in phases else 1
    if kind == "lr":  # the learning rate has no split; extra words name an optimizer or group
        return Candidate("lr", (0, phase_rank, len(extra)))
    if extra or len(splits) > 1:
        odd = f"the words {', '.join(map(repr, extra))}" if extra else "two splits"
        what = "an accuracy" if kind == "acc" else "a loss"
        return Rejection(
            IgnoreReason.UNRECOGNISED_METRIC,
            f"{what}, but {odd} make it a different metric from the curves; {use_map}",
        )
    split = next(iter(splits), "train")  # Keras writes the training loss as plain `loss`
    curve = f"{'val' if split == 'test' else split}_{kind}"
    return Candidate(curve, (1 if split == "test" else 0, phase_rank, 0))


def parse_map(items: Iterable[str]) -> dict[str, str]:
    """``CURVE=KEY`` items (the CLI's repeatable ``--map``) as {curve: key}."""
    overrides: dict[str, str] = {}
    for item in items:
        curve, sep, key = item.partition("=")
        curve, key = curve.strip(), key.strip()
        if not sep or not key:
            raise RunLogError("map", f"{item!r} is not CURVE=KEY (e.g. val_loss=loss/val)")
        overrides[curve] = key
    return check_map(overrides)


def check_map(overrides: Mapping[str, str]) -> dict[str, str]:
    """*overrides* checked: each names a curve once, each key is used once."""
    for curve in overrides:
        if curve not in CURVE_KEYS:
            raise RunLogError(
                f"map.{curve}", f"not a curve; give one of {', '.join(CURVE_KEYS)}"
            )
    keys = list(overrides.values())
    for key in keys:
        if keys.count(key) > 1:
            raise RunLogError("map", f"{key!r} is given for two curves")
    return dict(overrides)


@dataclass(frozen=True)
class Choice:
    """The key chosen for one curve."""

    curve: str
    key: str
    chosen_by: ChosenBy


def choose(
    keys: Sequence[str], overrides: Mapping[str, str]
) -> tuple[list[Choice], list[IgnoredKey]]:
    """One key per curve (the user's overrides first, then by name), and every other key with
    the reason it was not used. Two keys of equal standing for one curve are an error: which
    one is meant is the user's call (``--map``), not a guess."""
    present = set(keys)
    chosen = [Choice(curve, key, ChosenBy.MAP) for curve, key in check_map(overrides).items()]
    for choice in chosen:
        if choice.key not in present:
            shown = ", ".join(sorted(present)[:30]) or "nothing"
            raise RunLogError(
                f"map.{choice.curve}",
                f"the log has no column or tag {choice.key!r}; it has: {shown}",
            )
    taken = {c.curve: c.key for c in chosen}
    ignored: list[IgnoredKey] = []
    by_curve: dict[str, list[tuple[Rank, str]]] = {}
    for key in keys:
        if key in taken.values():
            continue
        found = recognise(key)
        if isinstance(found, Rejection):
            ignored.append(IgnoredKey(source=key, reason=found.reason, detail=found.detail))
        elif found.curve in taken:
            ignored.append(
                IgnoredKey(
                    source=key,
                    reason=IgnoreReason.SUPERSEDED,
                    detail=f"--map chose {taken[found.curve]!r} for {found.curve}",
                )
            )
        else:
            by_curve.setdefault(found.curve, []).append((found.rank, key))
    for curve, ranked in by_curve.items():
        ranked.sort(key=lambda pair: pair[0])
        (best_rank, best), *others = ranked
        ties = [key for rank, key in others if rank == best_rank]
        if ties:
            raise RunLogError(
                curve,
                f"{best!r} and {ties[0]!r} both look like {curve}; choose one with "
                f"--map {curve}=KEY (the API's \"map\")",
            )
        chosen.append(Choice(curve, best, ChosenBy.NAME))
        ignored.extend(
            IgnoredKey(
                source=key,
                reason=IgnoreReason.SUPERSEDED,
                detail=f"{best!r} was preferred for {curve} ({_why(best_rank, rank)})",
            )
            for rank, key in others
        )
    order = {curve: index for index, curve in enumerate(CURVE_KEYS)}
    chosen.sort(key=lambda c: order[c.curve])
    return chosen, ignored


def _why(best: Rank, other: Rank) -> str:
    if best[0] != other[0]:
        return "an exact curves or Keras name" if best == EXACT_RANK else "val before test"
    if best[1] != other[1]:
        return "per-epoch values before per-step ones"
    return "the plainest name"
