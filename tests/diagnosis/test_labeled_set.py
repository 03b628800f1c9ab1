"""The diagnoser on the held-out half of the labeled set of REAL training runs.

bench/diagnoser holds ≥ 100 real runs whose label is true by construction, plus cuts of the
long constant-LR ones labeled by what the rest of the run bears out (evaluate.py says how).
The thresholds were tuned on the training half only; this guards the held-out numbers
reported in docs/diagnoser.md against regressions. It is an accuracy test, not a timing one.
"""

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from studies.diagnosis import Curves, live_check

BENCH = Path(__file__).resolve().parents[2] / "bench" / "diagnoser"


def _evaluate_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("diagnoser_evaluate", BENCH / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evaluate() -> ModuleType:
    return _evaluate_module()


@pytest.fixture(scope="module")
def runs(evaluate: ModuleType) -> list[dict[str, Any]]:
    return evaluate.load_runs()  # type: ignore[no-any-return]


def test_the_set_is_big_and_varied(runs: list[dict[str, Any]]) -> None:
    assert len(runs) >= 100
    assert {r["dataset"] for r in runs} == {"digits", "mnist"}
    labels = {r["label"] for r in runs}
    assert labels == {"healthy", "overfitting", "underfitting", "undertrained", "diverged"}
    heldout = [r for r in runs if r["split"] == "heldout"]
    assert 0.2 <= len(heldout) / len(runs) <= 0.45
    assert {r["label"] for r in heldout} == labels


def test_heldout_whole_runs_meet_the_targets(
    evaluate: ModuleType, runs: list[dict[str, Any]]
) -> None:
    whole, _ = evaluate.samples([r for r in runs if r["split"] == "heldout"], cuts=False)
    report = evaluate.evaluate(whole)
    wrong = [f"{s.name}: {s.truth} -> {p}" for s, p, _ in report.errors]
    assert report.accuracy >= 0.95, wrong
    assert report.healthy_false_alarms <= 0.05, wrong


def test_heldout_whole_runs_and_cuts_meet_the_balanced_target(
    evaluate: ModuleType, runs: list[dict[str, Any]]
) -> None:
    everything, _ = evaluate.samples([r for r in runs if r["split"] == "heldout"], cuts=True)
    assert sum(not s.whole for s in everything) >= 30  # the cuts are really there
    report = evaluate.evaluate(everything)
    wrong = [f"{s.name}: {s.truth} -> {p}" for s, p, _ in report.errors]
    assert report.balanced_accuracy >= 0.90, wrong


def _first_live_stop(curves: Curves) -> int | None:
    return next(
        (t for t in range(1, curves.epochs + 1) if live_check(curves.prefix(t)) is not None),
        None,
    )


def test_live_check_on_every_prefix_of_every_real_run(runs: list[dict[str, Any]]) -> None:
    # The worker asks after every epoch: runs that did not diverge must never be stopped, and
    # a diverged run must be stopped in the epoch its loss blows up (non-finite, or ten times
    # a uniform guess), or at the latest once it sits at chance level.
    for run in runs:
        curves = Curves.model_validate(run["curves"])
        stop = _first_live_stop(curves)
        if run["label"] != "diverged":
            assert stop is None, f"{run['id']} stopped at epoch {stop}"
            continue
        assert stop is not None, f"{run['id']} never stopped"
        limit = 10 * math.log(curves.num_classes or 10)
        blown = [
            epoch
            for epoch, loss in enumerate(curves.train_loss or (), start=1)
            if loss is None or loss >= limit
        ]
        if blown:
            assert stop <= blown[0], f"{run['id']}: blew up at {blown[0]}, stopped at {stop}"
