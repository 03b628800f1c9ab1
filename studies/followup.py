"""The follow-up study: the seed's next move, as a study spec this server accepts as is.

Each move takes the study's typed ``StudySpec``, the learning rate to build around
(``Anchor``) and the server's ``SpecLimits``, and returns a ``Followup``: the new spec,
validated as a whole and checked against those limits, with the next step in words. Every
bound a move respects (most epochs, widest model, strongest weight decay, longest name) and
every default it starts from is read from the spec's fields, which are the trainer's, so
nothing here restates a setting. When no valid spec fits the limits, ``spec`` is None and
``next_step`` says why; a move never returns a spec the server would refuse.

Which move follows which verdict is the diagnoser's business (studies.diagnosis._study);
this module knows specs, not labels, so it imports nothing from the diagnoser.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import annotated_types
from pydantic import ValidationError

from studies.spec import (
    MAX_LR,
    ModelSpec,
    Sampler,
    SpecLimits,
    StudySpec,
    TrainSpec,
    check_limits,
    field_bounds,
)

# What a regularizing follow-up tries first when the study used no dropout (the seed's
# "dropout 0.2–0.5"; 0.3 is the middle that rarely stops a small CNN from learning).
FIRST_DROPOUT = 0.3
# Gradient clipping for a study whose every learning rate diverged (clip the global norm
# at 1, the usual first try).
FIRST_GRAD_CLIP = 1.0
# The fewest epochs whose curves show a trend (the diagnoser's "inconclusive" below it).
MIN_READABLE_EPOCHS = 3
_SUFFIX = "-next"
_NAME_MAX = next(
    m.max_length
    for m in StudySpec.model_fields["name"].metadata
    if isinstance(m, annotated_types.MaxLen)
)


@dataclass(frozen=True)
class Anchor:
    """Where the follow-up builds from: the best trial's learning rate, the ceiling its
    search must stay under (the geometric middle to the nearest LR that diverged above
    it, or infinity) and, for an overfitting run, its best epoch."""

    lr: float
    ceiling: float = math.inf
    best_epoch: int | None = None


@dataclass(frozen=True)
class Followup:
    """The next study (None when none fits the server's limits) and the next step in words."""

    spec: StudySpec | None
    next_step: str


def round_lr(lr: float) -> float:
    """A learning rate to 3 significant digits, as a grid prints it."""
    return float(f"{lr:.3g}")


def log_grid(low: float, high: float, points: int) -> list[float]:
    """*points* log-spaced LRs from *low* to *high*, rounded, largest first, unique, each
    within what a search accepts (0, MAX_LR]."""
    if points == 1 or high <= low:
        return [round_lr(min(high, MAX_LR))]
    step = (math.log10(high) - math.log10(low)) / (points - 1)
    values = {round_lr(10 ** (math.log10(low) + i * step)) for i in range(points)}
    return sorted((v for v in values if 0 < v <= MAX_LR), reverse=True)


def _named(base: str, suffix: str) -> str:
    """*base* made a valid study name ending in *suffix* (the spec's characters and length)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-._") or "study"
    return base[: _NAME_MAX - len(suffix)] + suffix


def followup_name(spec: StudySpec) -> str:
    """The follow-up's name: the study's (or its dataset's) with ``-next``, within the
    spec's length and character rules."""
    return _named(spec.name or spec.dataset, _SUFFIX)


def round_name(root: str, round_number: int) -> str:
    """The name of an automatic follow-up round: ``<root-name>-r<round>`` (studies.chain)."""
    return _named(root, f"-r{round_number}")


def chain_root_name(name: str, round_number: int) -> str:
    """The root's name back from a round's own ``round_name`` (round 1 is the root itself)."""
    return name if round_number <= 1 else name.removesuffix(f"-r{round_number}")


def _most(section: type[ModelSpec] | type[TrainSpec], name: str) -> float:
    """The largest value the trainer accepts for a field bounded above by ``le``."""
    bound = field_bounds(section, name).le
    if bound is None:
        raise ValueError(f"{section.__name__}.{name} declares no upper bound (le)")
    return bound


def _max_epochs(limits: SpecLimits) -> int:
    return int(min(limits.max_epochs, _most(TrainSpec, "epochs")))


def _train_for(spec: StudySpec, epochs: int) -> dict[str, Any]:
    """The ``train`` changes that set *epochs*: a warm-up that would no longer fit keeps
    its share of the run (the original was shorter than its run, so the share is < 1)."""
    changes: dict[str, Any] = {"epochs": epochs}
    warmup = spec.train.warmup_epochs
    if warmup >= epochs:
        changes["warmup_epochs"] = warmup * epochs / spec.train.epochs
    return changes


def _grid(lrs: list[float]) -> dict[str, Any]:
    """The ``search`` changes that make the study a grid over *lrs*."""
    return {
        "sampler": Sampler.GRID,
        "grid": lrs,
        "lr_low": min(lrs),
        "lr_high": max(lrs),
        "points_per_decade": None,
        "n_trials": None,  # only random/tpe take n_trials
    }


def _lr_points(wanted: int, limits: SpecLimits, extra: dict[str, list[Any]]) -> int:
    """How many learning rates fit the server's trial limit next to the extra dimensions
    (at least 1; check_limits reports a study that still does not fit)."""
    combos = math.prod(len(values) for values in extra.values())
    return max(1, min(wanted, limits.max_trials // combos))


def _finish(
    spec: StudySpec,
    next_step: str,
    limits: SpecLimits,
    **sections: dict[str, Any],
) -> Followup:
    """*spec* with each section's changes, validated as a whole and against *limits*."""
    data = spec.model_dump()
    for section, changes in sections.items():
        data[section] = {**data[section], **changes}
    if data["train"]["epochs"] > _max_epochs(limits):
        # A study submitted before this server lowered its max_epochs.
        data["train"] |= _train_for(spec, _max_epochs(limits))
    data["name"] = followup_name(spec)
    try:
        followup = StudySpec.model_validate(data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return Followup(None, f"{next_step} (No follow-up spec: it would be invalid: {reasons}.)")
    errors = check_limits(followup, limits)
    if errors:
        reasons = "; ".join(str(e) for e in errors)
        return Followup(
            None,
            f"{next_step} (No follow-up spec: it does not fit this server's limits: {reasons}.)",
        )
    return Followup(followup, next_step)


def wait(spec: StudySpec, limits: SpecLimits) -> Followup:
    """Nothing diagnosed yet: the same study again is all that can be proposed."""
    return _finish(
        spec, "No trial has been diagnosed yet: wait for the study's trials to finish.", limits
    )


def rerun(spec: StudySpec, limits: SpecLimits) -> Followup:
    """No trial completed (stopped, pruned or cancelled), so there is no best to build on."""
    return _finish(
        spec,
        "No trial ran to completion, so there is no best trial to build on: run the study "
        "again (or let it finish).",
        limits,
    )


def search_lower(spec: StudySpec, lowest: float, limits: SpecLimits) -> Followup:
    """The learning rates tried diverged (*lowest* the lowest that did): search 10 to 1000
    times lower, with batch norm and gradient clipping."""
    extra = spec.search.extra.as_dict()
    grid = log_grid(lowest / 1000, lowest / 10, _lr_points(3, limits, extra))
    return _finish(
        spec,
        f"The learning rates diverged, down to {lowest:g}: search 10 to 1000 times lower, "
        "with batch normalization and gradient clipping.",
        limits,
        search=_grid(grid),
        model={"norm": "batch"},
        train={"grad_clip": FIRST_GRAD_CLIP},
    )


def refine(spec: StudySpec, anchor: Anchor, limits: SpecLimits) -> Followup:
    """A healthy best: a finer grid of learning rates around it."""
    lr = anchor.lr
    extra = spec.search.extra.as_dict()
    points = _lr_points(5, limits, extra)
    grid = log_grid(lr / math.sqrt(10), min(lr * math.sqrt(10), anchor.ceiling), points)
    return _finish(
        spec,
        f"The best trial (lr {lr:g}) is healthy: refine the search with {len(grid)} learning "
        "rates around it (the seed's step 1 at a finer grain), then read the curves again.",
        limits,
        search=_grid(grid),
    )


def train_longer(spec: StudySpec, anchor: Anchor, limits: SpecLimits) -> Followup:
    """An undertrained best: twice the epochs (within the server's limit) and higher LRs."""
    lr = anchor.lr
    epochs = min(_max_epochs(limits), 2 * spec.train.epochs)
    extra = spec.search.extra.as_dict()
    grid = log_grid(lr, min(10 * lr, anchor.ceiling), _lr_points(3, limits, extra))
    longer = (
        f"train {epochs} epochs"
        if epochs > spec.train.epochs
        else f"keep {epochs} epochs (this server's most)"
    )
    return _finish(
        spec,
        f"The best trial (lr {lr:g}) was still improving: {longer} and search learning "
        f"rates from {lr:g} up to the highest that did not diverge.",
        limits,
        search=_grid(grid),
        train=_train_for(spec, epochs),
    )


def regularize(spec: StudySpec, anchor: Anchor, limits: SpecLimits) -> Followup:
    """An overfitting best: search stronger weight decay, add dropout and augmentation,
    over the same number of epochs.

    Not cut to the best epoch: regularization slows fitting, so the best epoch moves later,
    and a run cut where the unregularized one peaked ends undertrained (measured in
    bench/closed_loop.py: 0.839 → 0.758 on the digits when the run was cut to best epoch + 2).
    Every trial keeps its best epoch's checkpoint, so the epochs after it cost time, not the
    result."""
    lr = anchor.lr
    decay = spec.train.weight_decay
    # From no decay at all, start at a tenth of the trainer's default.
    base = decay if decay > 0 else TrainSpec.model_fields["weight_decay"].default / 10
    strongest = _most(TrainSpec, "weight_decay")
    decays = sorted({min(strongest, v) for v in (decay, base * 10, base * 100)})
    extra = {"weight_decay": decays}
    dropout = spec.model.dropout or FIRST_DROPOUT
    data = {"augment": "auto"} if spec.data.augment == "none" else {}
    epochs = min(spec.train.epochs, _max_epochs(limits))
    points = _lr_points(3, limits, extra)
    grid = log_grid(lr / 3, min(lr * 3, anchor.ceiling), points)
    return _finish(
        spec,
        f"The best trial (lr {lr:g}) overfits: regularize — search weight decay {decays} "
        f"with dropout {dropout} around lr {lr:g} over the same {epochs} epochs (the best "
        "epoch's checkpoint is kept), and add data or augmentation if you can.",
        limits,
        search={**_grid(grid), "extra": extra},
        model={"dropout": dropout},
        data=data,
        train=_train_for(spec, epochs),
    )


def grow(spec: StudySpec, anchor: Anchor, limits: SpecLimits) -> Followup:
    """An underfitting best: a wider model, less regularization, more epochs."""
    lr = anchor.lr
    width = int(min(_most(ModelSpec, "width"), 2 * spec.model.width))
    epochs = min(_max_epochs(limits), 2 * spec.train.epochs)
    extra = spec.search.extra.as_dict()
    grid = log_grid(lr / 3, min(lr * 3, anchor.ceiling), _lr_points(3, limits, extra))
    less_decay = {**_train_for(spec, epochs), "weight_decay": spec.train.weight_decay / 10}
    if not spec.model.is_builtin:
        # Width is a knob of sweepdoc's own architectures only: a plugin's or torchvision's
        # model is sized by its own options or name, which only the user can change.
        return _finish(
            spec,
            f"The best trial (lr {lr:g}) underfits: use a bigger model than {spec.model.arch} "
            f"(its size is not sweepdoc's to change), cut regularization and train {epochs} "
            "epochs.",
            limits,
            search=_grid(grid),
            train=less_decay,
        )
    return _finish(
        spec,
        f"The best trial (lr {lr:g}) underfits: widen the model to {width} channels, cut "
        f"regularization and train {epochs} epochs.",
        limits,
        search=_grid(grid),
        model={"width": width, "dropout": 0.0},
        train=less_decay,
    )


def rerun_longer(spec: StudySpec, anchor: Anchor, limits: SpecLimits) -> Followup:
    """A best trial too short to read: the same learning rate for enough epochs."""
    epochs = min(_max_epochs(limits), max(MIN_READABLE_EPOCHS, spec.train.epochs))
    return _finish(
        spec,
        f"The best trial ran fewer than {MIN_READABLE_EPOCHS} epochs: rerun it with at "
        f"least {MIN_READABLE_EPOCHS}.",
        limits,
        search=_grid([round_lr(anchor.lr)]),
        train=_train_for(spec, epochs),
    )


# The grid around a range test's suggestion: a third of it, it, and three times it. The
# suggestion is a point estimate whose two usual rules (steepest descent, the loss
# minimum / 10) commonly land a factor 3–10 apart (Smith 2017; fastai's lr_find), so half a
# decade each side brackets both with three trials, where the seed's blind grid spends five
# a whole decade apart.
RANGE_TEST_FACTORS = (1 / 3, 1.0, 3.0)


def around_suggestion(spec: StudySpec, suggestion: float, limits: SpecLimits) -> Followup:
    """After a range test (round 1 of a chain): a grid of learning rates around its
    *suggestion*, the rest of the recipe unchanged."""
    extra = spec.search.extra.as_dict()
    fits = _lr_points(len(RANGE_TEST_FACTORS), limits, extra) == len(RANGE_TEST_FACTORS)
    factors = RANGE_TEST_FACTORS if fits else (1.0,)  # too few trials left: the suggestion
    grid = sorted({round_lr(min(MAX_LR, suggestion * f)) for f in factors}, reverse=True)
    return _finish(
        spec,
        f"The range test suggests lr {suggestion:g}: train the recipe at {len(grid)} learning "
        f"rates around it ({', '.join(f'{lr:g}' for lr in grid)}), then read the curves.",
        limits,
        search={**_grid(grid), "range_steps": None},  # a range test's own knob
    )
