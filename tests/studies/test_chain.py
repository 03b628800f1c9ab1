"""Automatic follow-up rounds (studies.chain): the decision, exactly once, limits, cancel.

The decision (``chain.decide``) is a pure function of a round's summary; the rest runs on a
real database (a SQLite file, or PostgreSQL), slots played through the real queue as a worker
plays them (claim, Optuna trial, epochs, the real diagnosis of the curves, finish).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from studies import chain, followup, queue, store
from studies.db import ChainState, Database, StudyRow, StudyStatus, TrialRow, TrialState
from studies.diagnosis import Label, LrLabels, LrWindow, StudySummary
from studies.errors import ConflictError
from studies.results import TrialSummary
from studies.spec import SpecLimits, StudySpec
from tests.studies.conftest import (
    finish_diagnosed,
    optuna_trials,
    start_claimed_trial,
    tiny_spec,
)
from tests.waiting import run_in_threads

# A run that overfits (train loss keeps falling, val loss turns up after epoch 5) and one
# that is healthy (both losses level off together); the real diagnoser labels them so.
OVERFITTING = {
    "train_loss": [1.5 * 0.7**i for i in range(15)],
    "val_loss": [
        1.5,
        1.0,
        0.7,
        0.55,
        0.5,
        0.52,
        0.58,
        0.66,
        0.75,
        0.85,
        0.95,
        1.05,
        1.15,
        1.25,
        1.35,
    ],
    "train_acc": [min(0.999, 0.5 + 0.04 * i) for i in range(15)],
    "val_acc": [
        0.5,
        0.65,
        0.75,
        0.8,
        0.82,
        0.82,
        0.81,
        0.8,
        0.8,
        0.79,
        0.79,
        0.78,
        0.78,
        0.78,
        0.77,
    ],
}
_HEALTHY_VAL_LOSS = [1.5, 1.0, 0.7, 0.55, 0.45, 0.4, 0.37, 0.35, 0.34, 0.335, 0.332, 0.33]
_HEALTHY_VAL_ACC = [0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.91, 0.92, 0.925, 0.927, 0.928, 0.929]
HEALTHY = {
    "train_loss": [v * 0.95 for v in _HEALTHY_VAL_LOSS],
    "val_loss": _HEALTHY_VAL_LOSS,
    "train_acc": [a + 0.01 for a in _HEALTHY_VAL_ACC],
    "val_acc": _HEALTHY_VAL_ACC,
}


def _scaled(curves: dict[str, list[float]], acc_shift: float) -> dict[str, list[float]]:
    """*curves* with every validation accuracy moved by *acc_shift* (same shape, same label)."""
    return {**curves, "val_acc": [a + acc_shift for a in curves["val_acc"]]}


def server_for(tmp_path: Path, **limits: int) -> chain.ChainServer:
    data_root = tmp_path / "data"
    data_root.mkdir(exist_ok=True)
    return chain.ChainServer(
        limits=SpecLimits(**limits),
        data_root=data_root,
        artifacts_dir=tmp_path / "artifacts",
    )


def submit(db: Database, tmp_path: Path, *, max_rounds: int = 2, **overrides: Any) -> int:
    spec = StudySpec.model_validate(
        tiny_spec(name="loop", priority=7, follow_up={"max_rounds": max_rounds}, **overrides)
    )
    return store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts").id


def play(db: Database, study_id: int, curves: dict[str, list[float]]) -> None:
    """Run every waiting slot of *study_id* to completion with *curves*, as a worker does."""
    records = [
        {"epoch": i + 1, **{key: values[i] for key, values in curves.items()}}
        for i in range(len(curves["val_acc"]))
    ]
    best = max(curves["val_acc"])
    summary = TrialSummary(
        num_classes=10,
        final_val_acc=curves["val_acc"][-1],
        final_val_loss=curves["val_loss"][-1],
        best_val_acc=best,
        best_epoch=curves["val_acc"].index(best) + 1,
        best_val_loss=min(curves["val_loss"]),
        objective_value=best,
    )
    while (claim := queue.claim_next(db, worker="w", device="cpu")) is not None:
        assert claim.study_id == study_id
        start_claimed_trial(db, claim)
        for record in records:
            assert queue.record_epoch(db, claim, record, summary=summary).owned
        finish_diagnosed(db, claim, records, state=TrialState.COMPLETE, summary=summary)


def overfit_round(db: Database, tmp_path: Path, *, max_rounds: int = 2) -> int:
    """A submitted round 1 whose every trial overfitted (played to the end): the id."""
    first = submit(db, tmp_path, max_rounds=max_rounds)
    play(db, first, OVERFITTING)
    return first


def row(db: Database, study_id: int) -> StudyRow:
    return store.study_row(db, study_id)


# --- the decision, as a pure function of a round's summary ---------------------------------


def summary_of(
    spec: StudySpec,
    label: Label | None,
    value: float | None,
    *,
    plan: bool = True,
    neighbour_lr: float = 0.02,
) -> StudySummary:
    """A round's summary whose best trial (lr 0.01) has *label* and objective *value*, the
    nearest other learning rate tried *neighbour_lr*."""
    followup_spec = None
    if plan and value is not None:
        followup_spec = followup.regularize(spec, followup.Anchor(lr=0.01), SpecLimits()).spec
    return StudySummary(
        trials=2,
        label_counts={} if label is None else {label: 2},
        labels_by_lr=[
            LrLabels(lr=lr, labels=[] if label is None else [label], trials=[n])
            for n, lr in enumerate([0.01, neighbour_lr])
        ],
        best_trial=None if value is None else 0,
        best_lr=None if value is None else 0.01,
        best_value=value,
        best_label=label,
        lr_window=LrWindow(),
        next_step="regularize" if followup_spec else "nothing fits this server",
        followup_spec=followup_spec,
    )


def decide(
    tmp_path: Path,
    *,
    label: Label | None = Label.OVERFITTING,
    value: float | None = 0.8,
    round_number: int = 1,
    parent_best: float | None = None,
    max_rounds: int = 2,
    plan: bool = True,
    neighbour_lr: float = 0.02,
    **spec_overrides: Any,
) -> chain.Decision:
    spec = StudySpec.model_validate(
        tiny_spec(name="loop", priority=7, follow_up={"max_rounds": max_rounds}, **spec_overrides)
    )
    return chain.decide(
        spec=spec,
        round_number=round_number,
        root_name="loop",
        summary=summary_of(spec, label, value, plan=plan, neighbour_lr=neighbour_lr),
        parent_best=parent_best,
        suggestion=None,
        server=server_for(tmp_path),
    )


def test_an_overfitting_round_is_followed_by_its_summarys_spec_named_after_the_root(
    tmp_path: Path,
) -> None:
    decision = decide(tmp_path, round_number=2, parent_best=0.7)
    assert decision.next_spec is not None
    assert decision.next_spec.name == "loop-r3"
    assert decision.next_spec.priority == 7
    assert decision.next_spec.follow_up.max_rounds == 2  # the budget travels, rounds count it
    assert decision.next_spec.search.extra.weight_decay  # the regularizing move
    assert decision.reason.startswith("Round 3 submitted: regularize")


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"label": Label.HEALTHY}, "is healthy"),
        ({"value": None}, "No trial of round 1 completed"),
        ({"round_number": 2, "parent_best": 0.8, "value": 0.8}, "did not improve"),
        ({"round_number": 2, "parent_best": 0.85, "value": 0.8}, "did not improve"),
        ({"round_number": 3, "parent_best": 0.7, "max_rounds": 2}, "max_rounds = 2"),
        ({"plan": False}, "No follow-up round fits: nothing fits this server"),
    ],
    ids=["healthy", "nothing-completed", "no-gain", "worse", "rounds-out", "no-plan"],
)
def test_the_loop_stops_and_says_why(tmp_path: Path, kwargs: dict[str, Any], says: str) -> None:
    decision = decide(tmp_path, **kwargs)
    assert decision.next_spec is None
    assert says in decision.reason


def test_a_healthy_best_from_a_grid_a_decade_apart_gets_one_refining_round(
    tmp_path: Path,
) -> None:
    # The seed's grid knows the best learning rate only to a factor of 10: refine it first.
    coarse = decide(tmp_path, label=Label.HEALTHY, neighbour_lr=0.1)
    fine = decide(tmp_path, label=Label.HEALTHY, neighbour_lr=0.03)
    assert coarse.next_spec is not None and coarse.reason.startswith("Round 2 submitted")
    assert fine.next_spec is None and "is healthy" in fine.reason


def test_a_lower_validation_loss_is_an_improvement_when_the_loss_is_the_objective(
    tmp_path: Path,
) -> None:
    better = decide(tmp_path, round_number=2, parent_best=0.5, value=0.4, objective="val_loss")
    worse = decide(tmp_path, round_number=2, parent_best=0.3, value=0.4, objective="val_loss")
    assert better.next_spec is not None
    assert worse.next_spec is None and "did not improve" in worse.reason


def test_a_follow_up_the_server_would_refuse_stops_the_loop_with_the_field(
    tmp_path: Path,
) -> None:
    # The checkpoint the recipe starts from is gone from the server's data root: the
    # follow-up (same recipe) cannot be queued, and the reason names the field.
    decision = decide(tmp_path, train={"init_from": "gone.pt"})
    assert decision.next_spec is None
    assert "does not fit this server" in decision.reason
    assert "train.init_from" in decision.reason


def test_a_range_test_is_followed_by_three_learning_rates_around_its_suggestion() -> None:
    spec = StudySpec.model_validate(tiny_spec(name="probe"))
    plan = followup.around_suggestion(spec, 0.003, SpecLimits())
    assert plan.spec is not None
    assert plan.spec.search.lr_grid() == [0.009, 0.003, 0.001]
    assert plan.spec.model == spec.model and plan.spec.train == spec.train  # recipe unchanged
    squeezed = followup.around_suggestion(spec, 0.003, SpecLimits(max_trials=2))
    assert squeezed.spec is not None and squeezed.spec.search.lr_grid() == [0.003]


def test_round_names_stay_valid_and_lead_back_to_the_root() -> None:
    long_root = "x" * 80
    name = followup.round_name(long_root, 3)
    assert len(name) == 80 and name.endswith("-r3")
    StudySpec.model_validate({"dataset": "digits", "name": name})
    assert followup.chain_root_name("loop-r4", 4) == "loop"
    assert followup.chain_root_name("loop-r4", 1) == "loop-r4"


# --- on a real database ---------------------------------------------------------------------


def test_a_round_that_ends_submits_the_next_linked_both_ways(db: Database, tmp_path: Path) -> None:
    server = server_for(tmp_path)
    first = submit(db, tmp_path)
    assert chain.advance(db, first, server=server) is None  # still queued: nothing decided
    assert row(db, first).chain_reason is None

    play(db, first, OVERFITTING)
    outcome = chain.advance(db, first, server=server)

    assert outcome is not None and outcome.follow_up_id is not None
    second = outcome.follow_up_id
    parent, child = store.get_study(db, first), store.get_study(db, second)
    assert (parent.follow_up_id, parent.round, parent.parent_id) == (second, 1, None)
    assert (child.parent_id, child.round, child.follow_up_id) == (first, 2, None)
    assert child.name == "loop-r2" and child.priority == 7
    assert child.status is StudyStatus.QUEUED
    assert parent.chain_reason is not None and "Round 2 submitted" in parent.chain_reason
    assert child.spec["search"]["extra"]["weight_decay"]  # what the summary asked for
    # Its own Optuna study, every grid point enqueued there (what the dashboard shows).
    assert len(optuna_trials(db.url, child.optuna_study_name)) == child.trial_count
    # A second call, or the reconciler's sweep, changes nothing.
    assert chain.advance(db, first, server=server) is None
    assert chain.advance_all(db, server=server) == []

    rounds = store.study_chain(db, second).rounds
    assert [(r.id, r.round) for r in rounds] == [(first, 1), (second, 2)]
    assert rounds[0].best_label is Label.OVERFITTING
    assert rounds[0].best_value == pytest.approx(max(OVERFITTING["val_acc"]))
    assert rounds[1].best_trial_id is None and rounds[1].chain_reason is None


def test_a_round_without_gain_ends_the_chain_and_the_reconciler_finds_it(
    db: Database, tmp_path: Path
) -> None:
    server = server_for(tmp_path)
    first = overfit_round(db, tmp_path)
    outcome = chain.advance_all(db, server=server)  # as after a worker died before deciding
    assert [o.study_id for o in outcome] == [first]
    second = row(db, first).follow_up_id
    assert second is not None
    play(db, second, _scaled(OVERFITTING, -0.05))  # worse than round 1

    [stopped] = chain.advance_all(db, server=server)

    assert stopped.follow_up_id is None
    reason = row(db, second).chain_reason
    assert reason is not None and "did not improve on round 1" in reason
    assert [r.round for r in store.study_chain(db, first).rounds] == [1, 2]


def test_a_healthy_best_trial_of_a_fine_grid_ends_the_chain_at_once(
    db: Database, tmp_path: Path
) -> None:
    first = submit(db, tmp_path, search={"sampler": "grid", "grid": [0.012, 0.01]})
    play(db, first, HEALTHY)
    outcome = chain.advance(db, first, server=server_for(tmp_path))
    assert outcome is not None and outcome.follow_up_id is None
    assert "is healthy" in outcome.reason == row(db, first).chain_reason


def test_a_follow_up_over_the_servers_trial_limit_stops_the_loop_with_the_reason(
    db: Database, tmp_path: Path
) -> None:
    # The regularizing move searches 3 weight decays: more trials than this server allows.
    first = overfit_round(db, tmp_path)
    outcome = chain.advance(db, first, server=server_for(tmp_path, max_trials=2))
    assert outcome is not None and outcome.follow_up_id is None
    reason = row(db, first).chain_reason
    assert reason is not None and "limit of 2" in reason
    assert store.list_studies(db).count == 1  # nothing queued


def test_a_range_test_as_round_1_is_followed_by_a_grid_around_its_suggestion(
    db: Database, tmp_path: Path
) -> None:
    first = submit(db, tmp_path, search={"sampler": "range_test", "range_steps": 100})
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    # What studies.range_run stores (RangeTestResult.to_json), reduced to what is read.
    assert queue.record_lr_range(db, claim, {"suggestion": 0.003, "rule": "steepest"})
    assert queue.finish(db, claim, state=TrialState.COMPLETE)

    outcome = chain.advance(db, first, server=server_for(tmp_path))

    assert outcome is not None and outcome.follow_up_id is not None
    child = StudySpec.model_validate(store.get_study(db, outcome.follow_up_id).spec)
    assert child.search.sampler == "grid" and child.search.lr_grid() == [0.009, 0.003, 0.001]
    assert child.search.range_steps is None
    assert child.model == StudySpec.model_validate(row(db, first).spec).model
    assert "range test suggests lr 0.003" in outcome.reason


def test_a_chain_with_max_rounds_0_is_left_alone(db: Database, tmp_path: Path) -> None:
    first = overfit_round(db, tmp_path, max_rounds=0)
    assert chain.advance(db, first, server=server_for(tmp_path)) is None
    assert chain.advance_all(db, server=server_for(tmp_path)) == []
    assert row(db, first).chain_reason is None and row(db, first).follow_up_id is None


def test_racing_callers_submit_the_next_round_exactly_once(db: Database, tmp_path: Path) -> None:
    first = overfit_round(db, tmp_path)
    callers = 4
    start = threading.Barrier(callers)
    outcomes: list[chain.Outcome | None] = []
    errors: list[BaseException] = []

    def call(_index: int) -> None:
        # Each caller its own engine, as a worker process and the server have.
        own = Database(db.url)
        try:
            start.wait()
            outcomes.append(chain.advance(own, first, server=server_for(tmp_path)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    run_in_threads(call, callers)

    assert errors == []
    won = [o for o in outcomes if o is not None]
    assert len(won) == 1 and won[0].follow_up_id == row(db, first).follow_up_id
    studies = store.list_studies(db).data
    assert sorted(s.round for s in studies) == [1, 2]
    # The losers' Optuna studies were removed again: one per sweepdoc study.
    names = {s.optuna_study_name for s in studies}
    assert len(names) == 2
    for name in names:
        optuna_trials(db.url, name)


def test_cancelling_a_round_cancels_the_rounds_after_it_and_stops_the_loop(
    db: Database, tmp_path: Path
) -> None:
    server = server_for(tmp_path)
    first = overfit_round(db, tmp_path)
    outcome = chain.advance(db, first, server=server)
    assert outcome is not None and outcome.follow_up_id is not None
    second = outcome.follow_up_id
    claim = queue.claim_next(db, worker="w", device="cpu")  # round 2 starts running
    assert claim is not None and claim.study_id == second

    cancelled = store.cancel_study(db, first)

    assert cancelled.status is StudyStatus.COMPLETED  # round 1's results stand
    assert store.get_study(db, second).status is StudyStatus.CANCELLED
    reason = row(db, second).chain_reason
    assert reason is not None and f"study {first} was cancelled" in reason
    # Round 2's running slot stops at its next epoch; once it has, no round 3 follows.
    start_claimed_trial(db, claim)
    assert queue.finish(db, claim, state=TrialState.PRUNED)
    assert chain.advance(db, second, server=server) is None
    assert chain.advance_all(db, server=server) == []
    assert store.list_studies(db).count == 2
    # Nothing is left to stop: a second cancel is the usual conflict.
    with pytest.raises(ConflictError):
        store.cancel_study(db, first)


def test_a_round_cancelled_while_it_runs_takes_no_next_round(db: Database, tmp_path: Path) -> None:
    first = submit(db, tmp_path)
    store.cancel_study(db, first)
    play(db, first, OVERFITTING)  # nothing left to claim: its waiting slots ended
    assert chain.advance(db, first, server=server_for(tmp_path)) is None
    assert row(db, first).follow_up_id is None
    reason = row(db, first).chain_reason
    assert reason is not None and "cancelled" in reason


def test_every_study_view_carries_its_place_in_the_chain(db: Database, tmp_path: Path) -> None:
    first = submit(db, tmp_path, max_rounds=0)
    view = store.get_study(db, first)
    assert (view.round, view.parent_id, view.follow_up_id, view.chain_reason) == (
        1,
        None,
        None,
        None,
    )
    assert [r.id for r in store.study_chain(db, first).rounds] == [first]
    assert math.isclose(store.list_studies(db).data[0].round, 1)


def test_the_sweep_takes_up_only_the_rounds_that_can_still_advance(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chain_state`` is set at submit and at the decision; ``advance_all`` hands
    ``advance`` only open rounds whose slots have all finished: never a study without
    follow-up (undecided for ever), a decided one, a cancelled one or one still running."""
    server = server_for(tmp_path)
    off = submit(db, tmp_path, max_rounds=0)
    play(db, off, OVERFITTING)
    decided = submit(db, tmp_path)
    play(db, decided, OVERFITTING)
    assert chain.advance(db, decided, server=server) is not None
    next_round = row(db, decided).follow_up_id  # open, its slots waiting
    assert next_round is not None
    cancelled = submit(db, tmp_path)
    store.cancel_study(db, cancelled)
    ready = submit(db, tmp_path)
    assert queue.claim_next(db, worker="w", device="cpu") is not None  # next_round runs
    assert {s: row(db, s).chain_state for s in (off, decided, next_round, cancelled, ready)} == {
        off: ChainState.OFF,
        decided: ChainState.DECIDED,
        next_round: ChainState.OPEN,
        cancelled: ChainState.DECIDED,
        ready: ChainState.OPEN,
    }
    called: list[int] = []
    real_advance = chain.advance

    def recording(db: Database, study_id: int, *, server: chain.ChainServer) -> Any:
        called.append(study_id)
        return real_advance(db, study_id, server=server)

    monkeypatch.setattr(chain, "advance", recording)
    assert chain.advance_all(db, server=server) == []
    assert called == []  # `ready` has waiting slots, `next_round` a running one
    play_rest(db, ready)

    [outcome] = chain.advance_all(db, server=server)

    assert called == [ready] and outcome.study_id == ready
    assert row(db, ready).chain_state is ChainState.DECIDED


def play_rest(db: Database, study_id: int) -> None:
    """Finish *study_id*'s waiting slots with OVERFITTING curves, leaving others' alone."""
    with db.session() as session:
        session.execute(
            update(TrialRow)
            .where(TrialRow.study_id != study_id, TrialRow.state == TrialState.WAITING)
            .values(state=TrialState.FAILED)
        )
    play(db, study_id, OVERFITTING)
