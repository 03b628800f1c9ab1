"""The diagnoser on the held-out half of the labeled set of REAL training runs.

bench/diagnoser holds ≥ 170 real runs in two waves whose label is true by construction, plus
cuts of them labeled by what the rest of each run shows (bench/diagnoser/dataset.py says how).
The thresholds were tuned on the training half only; this guards the held-out numbers
reported in docs/diagnoser.md against regressions. It is an accuracy test, not a timing one.
"""

from types import ModuleType
from typing import Any

import pytest

from studies.diagnosis import Curves, live_check
from tests.diagnosis.bench_modules import load_bench_module

# The worker passes each run's plan (epochs, schedule); a CSV's user has none: both are judged.
with_and_without_plans = pytest.mark.parametrize(
    "plans", [True, False], ids=["with-plans", "without-plans"]
)


@pytest.fixture(scope="module")
def evaluate() -> ModuleType:
    return load_bench_module("evaluate")


@pytest.fixture(scope="module")
def runs(evaluate: ModuleType) -> list[dict[str, Any]]:
    return evaluate.load_runs()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def heldout(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs the thresholds were never tuned on: the only ones an accuracy test may read."""
    return [r for r in runs if r["split"] == "heldout"]


def _misjudged(report: Any) -> list[str]:
    """The report's errors, one readable line each, for an assertion's message."""
    return [f"{s.name}: {s.truth} -> {p}" for s, p, _ in report.errors]


def test_the_set_is_big_and_varied(
    runs: list[dict[str, Any]], heldout: list[dict[str, Any]]
) -> None:
    labels = {"healthy", "overfitting", "underfitting", "undertrained", "diverged"}
    assert len(runs) >= 170
    assert {r["dataset"] for r in runs} == {"digits", "mnist"}
    assert {r["label"] for r in runs} == labels
    second = [r for r in runs if r.get("wave") == 2]
    assert len(second) >= 70
    optims = [r["config"]["optim"] for r in runs]

    # Schedules, warm-up and fine-tuning, with the labels each kind can really produce.
    assert {o.get("schedule", "none") for o in optims} == {"none", "cosine", "step"}
    step = {r["label"] for r in runs if r["config"]["optim"].get("schedule") == "step"}
    assert {"healthy", "overfitting", "underfitting"} <= step
    assert sum(o.get("warmup_epochs", 0) > 0 for o in optims) >= 8
    finetuned = [r for r in second if r["config"]["pretrained"]]
    assert {r["label"] for r in finetuned} == labels - {"underfitting"}
    assert {r["config"]["optim"]["finetune"] for r in finetuned} == {"full", "linear-probe"}

    # 2-, 5-, 10- and 40-class tasks, and a task whose labels are noisy in validation too.
    assert {r["curves"]["num_classes"] for r in runs} == {2, 5, 10, 40}
    for classes in (2, 5, 40):
        assert len({r["label"] for r in runs if r["curves"]["num_classes"] == classes}) >= 4
    assert {r["label"] for r in second if r["task"] == "noisy25"} == labels

    # Long runs: 100-300 epochs, of several labels and schedules.
    long_runs = [r for r in runs if len(r["curves"]["val_acc"]) >= 100]
    assert len(long_runs) >= 20
    assert max(len(r["curves"]["val_acc"]) for r in runs) >= 250
    assert {r["label"] for r in long_runs} >= labels - {"diverged"}

    # Sum-reduced views: a real multiple of the mean losses, for every label, in both halves.
    summed = [r for r in runs if r.get("sum_reduced_scale")]
    assert len(summed) >= 30
    assert {r["label"] for r in summed} == labels
    assert {r["split"] for r in summed} == {"train", "heldout"}
    assert all(r["sum_reduced_scale"] == r["config"]["optim"].get("batch_size", 64)
               for r in summed)

    # Held out: a third of the first wave by id; half the second wave by family (a family's
    # seeds all on one side), every label on both sides, in both waves.
    assert 0.3 <= len(heldout) / len(runs) <= 0.5
    assert {r["label"] for r in heldout} == labels
    sides: dict[str, set[str]] = {}
    for run in second:
        assert run["split_by"] == "family"
        sides.setdefault(run["family"], set()).add(run["split"])
    assert all(len(side) == 1 for side in sides.values()), sides
    assert len(sides) >= 35
    heldout_families = [f for f, side in sides.items() if side == {"heldout"}]
    assert 0.4 <= len(heldout_families) / len(sides) <= 0.6
    assert {r["label"] for r in second if r["split"] == "heldout"} == labels
    assert {r["label"] for r in second if r["split"] == "train"} == labels


@with_and_without_plans
def test_heldout_whole_runs_meet_the_targets(
    evaluate: ModuleType, heldout: list[dict[str, Any]], plans: bool
) -> None:
    whole, _ = evaluate.samples(heldout, cuts=False, plans=plans)
    report = evaluate.evaluate(whole)
    wrong = _misjudged(report)
    assert report.accuracy >= 0.95, wrong
    assert report.healthy_false_alarms <= 0.05, wrong
    if plans:
        # Finished runs have their own calibration (docs/diagnoser.md: 0.003 measured).
        assert report.ece <= 0.05


# Regression floors, not issue 11's target. The balanced-accuracy target (whole runs + cuts
# >= 0.92) is NOT met on this held-out half (docs/diagnoser.md, fourth session): 0.897 with
# the runs' plans (what the worker passes), 0.881 without (a CSV's user); healthy false alarms
# 4.5% with plans and 5.7% without (target <= 3% not met: fine-tunes whose validation loss
# the forecast still sees falling). The third session's method scored 0.878 / 0.869 and 1.1% /
# 5.7%. The second wave (recipes held out by family, cuts labeled by the rest of the run, LR
# steps after the cut) is a harder set than the first, whose floor was 0.90. These guard the
# measured levels until the method reaches the target.
HELDOUT_BALANCED_FLOOR = {True: 0.89, False: 0.875}
HELDOUT_FALSE_ALARM_CEILING = {True: 0.05, False: 0.06}


@with_and_without_plans
def test_heldout_whole_runs_and_cuts_do_not_regress(
    evaluate: ModuleType, heldout: list[dict[str, Any]], plans: bool
) -> None:
    everything, _ = evaluate.samples(heldout, cuts=True, plans=plans)
    assert sum(not s.whole for s in everything) >= 30  # the cuts are really there
    report = evaluate.evaluate(everything)
    wrong = _misjudged(report)
    assert report.balanced_accuracy >= HELDOUT_BALANCED_FLOOR[plans], wrong[:40]
    assert report.healthy_false_alarms <= HELDOUT_FALSE_ALARM_CEILING[plans], wrong[:40]
    assert report.ece <= 0.05


def _first_live_stop(curves: Curves) -> int | None:
    return next(
        (t for t in range(1, curves.epochs + 1) if live_check(curves.prefix(t)) is not None),
        None,
    )


def _blown_up(losses: list[float | None]) -> int | None:
    """The first epoch whose loss is non-finite or ten times its start's scale above it.

    Relative (issue 11): a sum-reduced loss starts at batch × log K, and the first epoch has
    no start to explode from.
    """
    first = losses[0]
    lowest = first
    for epoch, loss in enumerate(losses, start=1):
        if loss is None:
            return epoch
        if first is None:
            continue
        lowest = min(lowest, loss) if lowest is not None else loss
        scale = max(abs(first), first - (lowest if lowest is not None else first))
        if epoch > 1 and loss - first >= 9 * scale > 0:
            return epoch
    return None


def test_live_check_on_every_prefix_of_every_real_run(runs: list[dict[str, Any]]) -> None:
    # The worker asks after every epoch: runs that did not diverge must never be stopped, and
    # a diverged run must be stopped in the epoch its loss blows up (non-finite, or risen ten
    # times its own scale above its start), or at the latest once it sits at chance level.
    for run in runs:
        curves = Curves.model_validate(run["curves"])
        stop = _first_live_stop(curves)
        if run["label"] != "diverged":
            assert stop is None, f"{run['id']} stopped at epoch {stop}"
            continue
        assert stop is not None, f"{run['id']} never stopped"
        blown = _blown_up(curves.train_loss or [])
        if blown is not None:
            assert stop <= blown, f"{run['id']}: blew up at {blown}, stopped at {stop}"
