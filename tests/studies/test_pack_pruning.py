"""Pack-aware pruning (issue 15): a pack's members are judged as if the members before them
had run first, by the study's own pruner; a pruned member leaves the pack with its own life."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.pruners import BasePruner, MedianPruner, PercentilePruner
from optuna.trial import TrialState as OptunaState

from studies import store
from studies.db import Database, TrialState
from studies.pack_pruning import PackPruner, pack_aware, reference_trial
from studies.schemas import TrialDetail
from studies.spec import parse_spec
from studies.worker import run_worker
from tests.studies.conftest import optuna_trials, tiny_spec, worker_options

Curve = dict[int, float]
# Earlier members' objective values by epoch (maximized), then the judged member's.
EARLIER: list[Curve] = [
    {1: 0.30, 2: 0.50, 3: 0.70, 4: 0.80},
    {1: 0.20, 2: 0.40, 3: 0.60, 4: 0.75},
    {1: 0.10, 2: 0.30, 3: 0.55, 4: 0.60},
]
JUDGED: list[Curve] = [
    {1: 0.15, 2: 0.20, 3: 0.25, 4: 0.30},  # behind all along
    {1: 0.35, 2: 0.45, 3: 0.65, 4: 0.72},  # in the middle
    {1: 0.40, 2: 0.60, 3: 0.80, 4: 0.90},  # ahead
]
PRUNERS: dict[str, Callable[[], BasePruner]] = {
    "median-startup2-warmup2": lambda: MedianPruner(n_startup_trials=2, n_warmup_steps=2),
    "median-startup0": lambda: MedianPruner(n_startup_trials=0, n_warmup_steps=0),
    "percentile25-interval2": lambda: PercentilePruner(25.0, n_startup_trials=1, interval_steps=2),
    "percentile75-min3": lambda: PercentilePruner(75.0, n_startup_trials=0, n_min_trials=3),
}


def _study(pruner: BasePruner) -> optuna.Study:
    # Optuna's in-memory storage: thousands of verdicts in a second (the worker test below
    # runs the rule on SQLite).
    return optuna.create_study(direction="maximize", pruner=pruner)


def _verdicts(
    study: optuna.Study, judged: Curve, *, at_each_step: Callable[[int], None]
) -> list[bool]:
    """The pruner's verdict at each step of *judged* (reported one step after another);
    *at_each_step* runs before each report."""
    trial = study.ask()
    verdicts: list[bool] = []
    for step, value in judged.items():
        at_each_step(step)
        trial.report(value, step)
        verdicts.append(trial.should_prune())
    return verdicts


@pytest.mark.parametrize("judged", JUDGED, ids=["behind", "middle", "ahead"])
@pytest.mark.parametrize("finished", [0, 1], ids=["fresh-study", "one-finished-trial"])
@pytest.mark.parametrize("earlier", [1, 2, 3], ids=["1-earlier", "2-earlier", "3-earlier"])
@pytest.mark.parametrize("pruner", list(PRUNERS))
def test_a_member_gets_the_verdict_it_would_get_had_the_earlier_members_run_first(
    pruner: str, earlier: int, finished: int, judged: Curve
) -> None:
    """Optuna itself, with the earlier members run to completion before the judged trial,
    against the pack: the earlier members still running, at the judged member's epoch."""
    before = [{1: 0.25, 2: 0.35, 3: 0.5, 4: 0.65}][:finished]
    members = EARLIER[:earlier]

    one_after_another = _study(PRUNERS[pruner]())
    for curve in [*before, *members]:
        trial = one_after_another.ask()
        for step, value in curve.items():
            trial.report(value, step)
        one_after_another.tell(trial, curve[max(curve)])
    expected = _verdicts(one_after_another, judged, at_each_step=lambda step: None)

    packed = _study(PRUNERS[pruner]())
    for curve in before:
        trial = packed.ask()
        for step, value in curve.items():
            trial.report(value, step)
        packed.tell(trial, curve[max(curve)])
    references: list[Curve] = [{} for _ in members]  # what each earlier member reported so far

    def members_reach(step: int) -> None:
        for curve, reported in zip(members, references, strict=True):
            reported[step] = curve[step]

    def earlier_members(number: int) -> list[optuna.trial.FrozenTrial]:
        return [t for t in map(reference_trial, references) if t is not None]

    packed.pruner = pack_aware(packed.pruner, earlier_members)
    assert isinstance(packed.pruner, PackPruner)
    assert _verdicts(packed, judged, at_each_step=members_reach) == expected


def test_without_the_pack_aware_rule_no_member_is_ever_pruned() -> None:
    """What the rule fixes: Optuna alone sees no COMPLETE trial while the pack trains."""
    study = _study(MedianPruner(n_startup_trials=0, n_warmup_steps=0))
    assert _verdicts(study, JUDGED[0], at_each_step=lambda step: None) == [False] * 4


def test_pruners_that_see_running_trials_are_left_as_they_are() -> None:
    hyperband = optuna.pruners.HyperbandPruner(min_resource=1, max_resource=10)
    assert pack_aware(hyperband, lambda number: []) is hyperband
    nop = optuna.pruners.NopPruner()
    assert pack_aware(nop, lambda number: []) is nop


def test_a_member_without_a_finite_value_is_no_reference() -> None:
    assert reference_trial({}) is None
    assert reference_trial({1: float("nan")}) is None
    frozen = reference_trial({1: 0.2, 2: float("nan"), 3: 0.4})
    assert frozen is not None and frozen.state is OptunaState.COMPLETE
    assert frozen.intermediate_values == {1: 0.2, 3: 0.4}


# --- through a real worker ---------------------------------------------------------------

# Slots are numbered by descending rate: the two good rates run first (the median pruner's
# two startup trials), the two that barely learn are judged against them from epoch 2 on.
GRID = [0.01, 0.005, 1e-5, 1e-6]


def _run(db: Database, tmp_path: Path, max_pack: int) -> list[TrialDetail]:
    spec = parse_spec(
        tiny_spec(
            search={"grid": GRID},
            data={"train_subset": 600},
            train={"epochs": 4, "optimizer": "adam", "batch_size": 32},
            pruner="median",
            max_pack=max_pack,
            max_parallel=len(GRID),
        )
    )
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    run_worker(worker_options(db.url, tmp_path, f"worker-{max_pack}", torch_threads=1))
    trials = store.list_trials(db, study.id).data
    return [store.get_trial(db, t.id) for t in sorted(trials, key=lambda t: t.number)]


def test_a_packed_study_prunes_the_members_its_unpacked_run_prunes(
    db: Database, tmp_path: Path
) -> None:
    packed = _run(db, tmp_path, max_pack=len(GRID))
    alone = _run(db, tmp_path, max_pack=1)

    by_lr = {t.params["lr"]: t for t in packed}
    for lr in (0.01, 0.005):  # the startup trials: never judged
        assert by_lr[lr].state is TrialState.COMPLETE, by_lr[lr].stop_reason
        assert by_lr[lr].epochs_done == 4
    for lr in (1e-5, 1e-6):
        pruned = by_lr[lr]
        assert pruned.state is TrialState.PRUNED, pruned.stop_reason
        assert pruned.stop_reason == "pruned by the median pruner at epoch 2"
        assert pruned.epochs_done == 2 and len(pruned.curves["val_acc"]) == 2
        assert pruned.label is not None  # diagnosed like any other trial
        assert len(pruned.packed_with or []) == len(GRID) - 1
    # A pruned member's result is stored as it leaves the pack, not when the pack ends.
    for lr in (0.01, 0.005):
        for pruned_lr in (1e-5, 1e-6):
            finished, ended = by_lr[pruned_lr].finished_at, by_lr[lr].finished_at
            assert finished is not None and ended is not None and finished < ended
    # The same trials pruned at the same epochs as when each trained alone, in slot order.
    assert [(t.params, t.state, t.epochs_done) for t in packed] == [
        (t.params, t.state, t.epochs_done) for t in alone
    ]

    name = store.get_study(db, packed[0].study_id).optuna_study_name
    in_optuna = {t.params["lr"]: t for t in optuna_trials(db.url, name)}
    for trial in packed:
        frozen = in_optuna[trial.params["lr"]]
        expected = (
            OptunaState.COMPLETE if trial.state is TrialState.COMPLETE else OptunaState.PRUNED
        )
        assert frozen.state == expected
        assert sorted(frozen.intermediate_values) == list(range(1, trial.epochs_done + 1))


def test_the_finished_trials_are_read_again_only_when_the_queue_finished_one_more() -> None:
    """A trial alone (no earlier members) is judged by the same wrapper: Optuna's finished
    trials are re-read when the queue's COMPLETE count moves, and a trial finished
    meanwhile counts at once; while a tell lags behind the queue, once per epoch."""
    study = _study(MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    storage = study._storage
    reads: list[int] = []
    read_all = storage.get_all_trials

    def counted(*args: Any, **kwargs: Any) -> list[optuna.trial.FrozenTrial]:
        reads.append(1)
        return read_all(*args, **kwargs)

    storage.get_all_trials = counted  # type: ignore[method-assign]
    queue_complete = [0]
    study.pruner = pack_aware(
        study.pruner, lambda number: [], complete_count=lambda: queue_complete[0]
    )
    judged = study.ask()

    def verdict(step: int, value: float) -> bool:
        reads.clear()
        judged.report(value, step)
        return bool(judged.should_prune())

    assert verdict(1, 0.1) is False  # nothing finished: no median yet
    assert verdict(2, 0.2) is False and not reads  # the count stood still: no read
    ahead = study.ask()
    for step, value in {1: 0.5, 2: 0.6, 3: 0.7, 4: 0.8, 5: 0.8, 6: 0.8}.items():
        ahead.report(value, step)
    study.tell(ahead, 0.8)
    queue_complete[0] = 1  # the queue finished it first (then Optuna was told)
    assert verdict(3, 0.3) is True and reads  # read again, and it counts at once
    assert verdict(4, 0.3) is True and not reads
    queue_complete[0] = 2  # a slot finished whose tell has not landed
    assert verdict(5, 0.3) is True and reads
    assert verdict(6, 0.3) is True and reads  # disagreeing counts: read at every epoch
