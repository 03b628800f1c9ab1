"""The store and the queue on a real database, without training: submit, claim order,
max_parallel, reaper, cancel, lossless curves, and agreement with Optuna's own view."""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState as OptunaState
from sqlalchemy import text
from sqlalchemy.exc import DataError, StatementError

from studies import optuna_bridge, queue, store
from studies.db import Database, StudyStatus, TrialState, utcnow
from studies.errors import ConflictError, NotFoundError, QueueFullError
from studies.results import TrialSummary
from studies.spec import MAX_NAME_CHARS, parse_spec
from tests.studies.conftest import finish_diagnosed, start_claimed_trial, tiny_spec
from tests.waiting import run_in_threads


def _an_hour_later() -> datetime:
    """A moment past every running slot's heartbeat grace: the reaper then reaps them all."""
    return utcnow() + timedelta(hours=1)


def _optuna_trials(url: str, study_name: str) -> list[optuna.trial.FrozenTrial]:
    """The trials as Optuna itself reads them from *url* (what the dashboard shows)."""
    storage = optuna.storages.RDBStorage(url)  # what optuna.load_study(storage=url) builds
    try:
        return optuna.load_study(study_name=study_name, storage=storage).trials
    finally:
        storage.engine.dispose()


def _submit(db: Database, tmp_path: Path, **overrides: object) -> int:
    spec = parse_spec(tiny_spec(**overrides))
    return store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts").id


def test_submitting_a_grid_queues_one_slot_per_point_and_enqueues_it_in_optuna(
    db: Database, tmp_path: Path
) -> None:
    study = store.submit_study(db, parse_spec({"dataset": "digits"}), artifacts_dir=tmp_path)
    assert study.status is StudyStatus.QUEUED and study.progress == 0.0
    assert study.counts[TrialState.WAITING] == 5 and study.url == f"/v1/studies/{study.id}"
    trials = store.list_trials(db, study.id)
    assert trials.count == 5
    assert [t.params["lr"] for t in trials.data] == [1e-1, 1e-2, 1e-3, 1e-4, 1e-5]
    optuna_trials = _optuna_trials(db.url, study.optuna_study_name)
    assert [t.state for t in optuna_trials] == [OptunaState.WAITING] * 5
    assert [t.system_attrs["fixed_params"]["lr"] for t in optuna_trials] == [
        1e-1,
        1e-2,
        1e-3,
        1e-4,
        1e-5,
    ]


def test_random_slots_get_their_learning_rate_from_the_sampler_when_claimed(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(
        db, tmp_path, search={"sampler": "random", "n_trials": 3, "lr_low": 1e-4, "lr_high": 1e-2}
    )
    assert all(t.params == {} for t in store.list_trials(db, study_id).data)
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None and claim.params is None
    params = start_claimed_trial(db, claim)
    assert 1e-4 <= float(params["lr"]) <= 1e-2  # type: ignore[arg-type]
    assert store.get_trial(db, claim.trial_id).params == params


def test_claims_follow_priority_then_submission_and_respect_max_parallel(
    db: Database, tmp_path: Path
) -> None:
    low = _submit(db, tmp_path, priority=0, max_parallel=4, search={"grid": [0.1, 0.01]})
    high_first = _submit(db, tmp_path, priority=5, max_parallel=1, search={"grid": [0.1, 0.01]})
    high_second = _submit(
        db, tmp_path, priority=5, max_parallel=2, search={"grid": [0.3, 0.03, 0.003]}
    )
    order = []
    while (claim := queue.claim_next(db, worker="w", device="cpu")) is not None:
        order.append((claim.study_id, claim.number))
    # high_first runs one at a time, high_second two, then the low-priority study.
    assert order == [(high_first, 0), (high_second, 0), (high_second, 1), (low, 0), (low, 1)]
    # Finishing a trial frees a place of its study.
    first = queue.load_claim(db, store.list_trials(db, high_first).data[0].id, "w")
    assert queue.finish(db, first, state=TrialState.COMPLETE)
    nxt = queue.claim_next(db, worker="w", device="cpu")
    assert nxt is not None and (nxt.study_id, nxt.number) == (high_first, 1)


def test_a_slot_is_claimed_once_even_when_claims_race(db: Database, tmp_path: Path) -> None:
    """Eight threads, each with its own engine and connections (as worker processes have),
    released by one barrier, claim the same slot at once: exactly one wins."""
    study_id = _submit(db, tmp_path, max_parallel=8, search={"grid": [0.1]})
    slot = store.list_trials(db, study_id).data[0].id
    contenders = 8
    start = threading.Barrier(contenders)
    wins: dict[str, bool] = {}

    def claim(index: int) -> None:
        name = f"w{index}"
        own = Database(db.url)
        try:
            start.wait(timeout=60)
            wins[name] = queue.try_claim(own, slot, study_id, worker=name, device="cpu")
        finally:
            own.dispose()

    run_in_threads(claim, contenders)
    assert len(wins) == contenders  # every contender got an answer, none raised
    (winner,) = [name for name, won in wins.items() if won]
    detail = store.get_trial(db, slot)
    assert detail.worker == winner and detail.attempt == 1 and detail.state is TrialState.RUNNING


def test_curves_with_nan_and_inf_survive_the_database_and_are_served_as_null(
    db: Database, tmp_path: Path
) -> None:
    _submit(db, tmp_path)
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    records = [
        {"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "train_acc": 0.3, "val_acc": 0.4},
        {
            "epoch": 2,
            "train_loss": math.inf,
            "val_loss": math.nan,
            "train_acc": 0.1,
            "val_acc": 0.1,
        },
        {
            "epoch": 3,
            "train_loss": -math.inf,
            "val_loss": math.nan,
            "train_acc": 0.1,
            "val_acc": 0.1,
        },
    ]
    for record in records:
        assert queue.record_epoch(db, claim, record).owned
    fresh = Database(db.url)  # another connection, as another process would read it
    stored = store.epoch_records(fresh, store.trial_row(fresh, claim.trial_id))
    fresh.dispose()
    assert stored[1]["train_loss"] == math.inf and math.isnan(stored[1]["val_loss"])
    assert stored[2]["train_loss"] == -math.inf
    detail = store.get_trial(db, claim.trial_id)
    assert detail.curves["train_loss"] == [2.0, None, None]
    assert detail.curves["val_loss"] == [1.5, None, None]
    assert json.loads(detail.model_dump_json())["epochs"][1]["val_loss"] is None


def test_the_reaper_requeues_a_dead_workers_slot_then_gives_up_after_max_attempts(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, search={"grid": [0.1]})
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        claim = queue.claim_next(db, worker=f"w{attempt}", device="cpu")
        assert claim is not None and claim.attempt == attempt
        assert start_claimed_trial(db, claim) == {"lr": 0.1}  # a retry runs the same point
        assert queue.reap_stale(db) == []  # still fresh
        reaped = queue.reap_stale(db, now=_an_hour_later())
        assert [(r.trial_id, r.requeued) for r in reaped] == [
            (claim.trial_id, attempt < queue.MAX_ATTEMPTS)
        ]
        trial_id = claim.trial_id
    detail = store.get_trial(db, trial_id)
    assert detail.state is TrialState.FAILED and "heartbeat" in (detail.error or "")
    assert [a.worker for a in detail.attempts] == ["w1", "w2", "w3"]
    assert all(a.state is TrialState.FAILED for a in detail.attempts)
    assert queue.claim_next(db, worker="w4", device="cpu") is None
    study = store.get_study(db, study_id)
    assert study.status is StudyStatus.FAILED
    optuna_trials = _optuna_trials(db.url, study.optuna_study_name)
    # The enqueued trial and two fresh ones, each failed, each with the same point.
    assert [(t.state, t.params) for t in optuna_trials] == [(OptunaState.FAIL, {"lr": 0.1})] * 3


def test_every_attempt_in_the_history_says_when_it_was_claimed(
    db: Database, tmp_path: Path
) -> None:
    """Released, reaped and finished attempts alike keep their claim time (finish and
    release once left it out)."""
    _submit(db, tmp_path, search={"grid": [0.1]})
    released = queue.claim_next(db, worker="leaving", device="cpu")
    assert released is not None
    start_claimed_trial(db, released)
    assert queue.release(db, released, reason="worker stopping")
    finished = queue.claim_next(db, worker="finisher", device="cpu")
    assert finished is not None
    start_claimed_trial(db, finished)
    assert queue.finish(db, finished, state=TrialState.COMPLETE)
    attempts = store.get_trial(db, finished.trial_id).attempts
    assert [a.worker for a in attempts] == ["leaving", "finisher"]
    for attempt in attempts:
        assert attempt.claimed_at is not None and attempt.claimed_at <= attempt.finished_at


def test_a_reaped_worker_can_no_longer_write_to_its_old_slot(db: Database, tmp_path: Path) -> None:
    _submit(db, tmp_path, search={"grid": [0.1]})
    claim = queue.claim_next(db, worker="slow", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    queue.reap_stale(db, now=_an_hour_later())
    assert not queue.beat(db, claim)
    assert not queue.record_epoch(db, claim, {"epoch": 1, "val_acc": 0.5}).owned
    assert not queue.finish(db, claim, state=TrialState.COMPLETE)
    assert store.get_trial(db, claim.trial_id).state is TrialState.WAITING


def test_cancel_ends_waiting_slots_keeps_finished_ones_and_flags_running_ones(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, search={"grid": [0.3, 0.1, 0.03]})
    done = queue.claim_next(db, worker="w", device="cpu")
    running = queue.claim_next(db, worker="w", device="cpu")
    assert done is not None and running is not None
    start_claimed_trial(db, done)
    start_claimed_trial(db, running)
    assert queue.finish(db, done, state=TrialState.COMPLETE, label="healthy")
    study = store.cancel_study(db, study_id)
    assert study.status is StudyStatus.CANCELLED
    assert queue.record_epoch(db, running, {"epoch": 1, "val_acc": 0.2}).cancel_requested
    states = [t.state for t in store.list_trials(db, study_id).data]
    assert states == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.PRUNED]
    assert store.get_trial(db, done.trial_id).label == "healthy"
    assert queue.claim_next(db, worker="w", device="cpu") is None
    optuna_trials = _optuna_trials(db.url, study.optuna_study_name)
    assert optuna_trials[2].state == OptunaState.PRUNED  # the never-started point


def test_cancelling_a_finished_study_is_a_conflict_and_unknown_ids_are_not_found(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, search={"grid": [0.1]})
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    queue.finish(db, claim, state=TrialState.COMPLETE)
    assert store.get_study(db, study_id).status is StudyStatus.COMPLETED
    with pytest.raises(ConflictError, match="already finished"):
        store.cancel_study(db, study_id)
    with pytest.raises(NotFoundError, match="study 999"):
        store.get_study(db, 999)
    with pytest.raises(NotFoundError, match="trial 999"):
        store.get_trial(db, 999)


def test_studies_list_newest_first_with_paging_and_a_status_filter(
    db: Database, tmp_path: Path
) -> None:
    ids = [_submit(db, tmp_path, search={"grid": [0.1]}) for _ in range(3)]
    store.cancel_study(db, ids[1])
    page = store.list_studies(db, offset=1, limit=1)
    assert page.count == 3 and [s.id for s in page.data] == [ids[1]]
    cancelled = store.list_studies(db, status=StudyStatus.CANCELLED)
    assert cancelled.count == 1 and cancelled.data[0].id == ids[1]
    assert store.list_studies(db, status=StudyStatus.QUEUED).count == 2


def test_readiness_needs_the_database_and_a_recently_seen_worker(db: Database) -> None:
    assert not store.readiness(db).ready
    queue.touch_worker(db, name="w1", host="h", pid=1, device="cpu", current_trial_id=None)
    ready = store.readiness(db)
    assert ready.ready and ready.workers_seen == 1 and ready.workers[0].name == "w1"
    assert not store.readiness(Database("sqlite:////nonexistent/dir/x.db")).database


def test_readiness_without_the_worker_requirement_needs_only_the_database(db: Database) -> None:
    api_only = store.readiness(db, requires_worker=False)
    assert api_only.ready and api_only.workers_seen == 0 and api_only.reason is None
    gone = store.readiness(Database("sqlite:////nonexistent/dir/x.db"), requires_worker=False)
    assert not gone.ready and not gone.database


def test_a_worker_restarted_under_its_name_is_shown_as_the_new_process(db: Database) -> None:
    queue.touch_worker(db, name="w1", host="h", pid=1, device="cpu", current_trial_id=None)
    first = store.readiness(db).workers[0]
    queue.touch_worker(db, name="w1", host="h", pid=1, device="cpu", current_trial_id=None)
    assert store.readiness(db).workers[0].started_at == first.started_at  # same process
    queue.touch_worker(db, name="w1", host="h2", pid=2, device="cpu", current_trial_id=None)
    (restarted,) = store.readiness(db).workers
    assert (restarted.host, restarted.pid) == ("h2", 2)
    assert restarted.started_at > first.started_at


W, R, C, P, F = (
    TrialState.WAITING,
    TrialState.RUNNING,
    TrialState.COMPLETE,
    TrialState.PRUNED,
    TrialState.FAILED,
)


@pytest.mark.parametrize(
    ("states", "cancelled", "status"),
    [
        ([W, W], False, StudyStatus.QUEUED),
        ([R, W], False, StudyStatus.RUNNING),
        ([C, W], False, StudyStatus.RUNNING),  # between two trials
        ([C, P], False, StudyStatus.COMPLETED),  # a diverged trial is a result, not an error
        ([C, F], False, StudyStatus.FAILED),
        ([C, R], True, StudyStatus.CANCELLED),
    ],
    ids=["queued", "running", "between-trials", "completed", "failed", "cancelled"],
)
def test_study_status_follows_its_trials(
    states: list[TrialState], cancelled: bool, status: StudyStatus
) -> None:
    counts = {state: states.count(state) for state in TrialState}
    assert queue.study_status(counts, cancel_requested=cancelled) is status


# -- the best trial: one definition for the API and the study summary -------------------------

NAN = math.nan


@dataclass(frozen=True)
class Outcome:
    """How one slot of a test study ends: its state and its validation curves."""

    state: TrialState
    val_acc: tuple[float, ...] = ()
    val_loss: tuple[float, ...] = ()


def _summary(records: list[dict[str, float]], *, maximize: bool) -> TrialSummary:
    """What the worker stores after an epoch (``TrialRow.summary``), spelled out."""
    accs = [r["val_acc"] for r in records if math.isfinite(r["val_acc"])]
    losses = [r["val_loss"] for r in records if math.isfinite(r["val_loss"])]
    best_acc = max(accs) if accs else None
    best_loss = min(losses) if losses else None
    return TrialSummary(
        num_classes=10,
        final_val_acc=records[-1]["val_acc"],
        final_val_loss=records[-1]["val_loss"],
        best_val_acc=best_acc,
        best_epoch=next(r["epoch"] for r in records if r["val_acc"] == best_acc)
        if best_acc is not None
        else None,
        best_val_loss=best_loss,
        objective_value=best_acc if maximize else best_loss,
    )


def run_outcomes(db: Database, study_id: int, outcomes: list[Outcome]) -> None:
    """Play *outcomes* slot by slot through the queue as a worker would, without training:
    every epoch stored with the running summary, then the real diagnosis of the curves and
    the final state. Slots past the list stay waiting."""
    maximize = store.get_study(db, study_id).objective.value == "val_acc"
    for outcome in outcomes:
        claim = queue.claim_next(db, worker="w", device="cpu")
        assert claim is not None and claim.study_id == study_id
        start_claimed_trial(db, claim)
        records: list[dict[str, float]] = []
        for epoch, (acc, loss) in enumerate(zip(outcome.val_acc, outcome.val_loss, strict=True)):
            records.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": loss,
                    "val_loss": loss,
                    "train_acc": acc,
                    "val_acc": acc,
                }
            )
            summary = _summary(records, maximize=maximize)
            assert queue.record_epoch(db, claim, records[-1], summary=summary).owned
        if not records:
            assert queue.finish(db, claim, state=outcome.state, error="raised before epoch 1")
            continue
        summary = _summary(records, maximize=maximize)
        finish_diagnosed(db, claim, records, state=outcome.state, summary=summary)


RISING = (0.3, 0.6, 0.75)  # the first epochs of every run that is not diverged
LOSSES = (1.5, 1.0, 0.8, 0.7)
BEST_TRIAL_STUDIES = {
    # Complete, pruned and diverged runs, a failed and a waiting slot, and a tie for the
    # best accuracy between slots 3 and 4: the lower number wins. Slot 1 reached the
    # highest accuracy but was pruned, so it is not a result (Optuna's rule).
    "mixed-with-a-tie": (
        "val_acc",
        [
            Outcome(TrialState.COMPLETE, (*RISING, 0.80), LOSSES),
            Outcome(TrialState.PRUNED, (*RISING, 0.95), LOSSES),
            Outcome(TrialState.PRUNED, (0.1, 0.1, 0.1, 0.1), (2.3, 9.0, NAN, NAN)),
            Outcome(TrialState.COMPLETE, (*RISING, 0.90), LOSSES),
            Outcome(TrialState.COMPLETE, (*RISING, 0.90), LOSSES),
            Outcome(TrialState.FAILED),
        ],
        3,
    ),
    # Minimizing the validation loss: the pruned run's lower loss does not count either.
    "val-loss-with-a-tie": (
        "val_loss",
        [
            Outcome(TrialState.COMPLETE, (*RISING, 0.80), (1.5, 1.0, 0.8, 0.5)),
            Outcome(TrialState.COMPLETE, (*RISING, 0.70), (1.5, 1.0, 0.8, 0.4)),
            Outcome(TrialState.PRUNED, (*RISING, 0.75), (1.5, 1.0, 0.8, 0.1)),
            Outcome(TrialState.COMPLETE, (*RISING, 0.90), (1.5, 1.0, 0.8, 0.4)),
            Outcome(TrialState.PRUNED, (0.1, 0.1, 0.1, 0.1), (2.3, 9.0, NAN, NAN)),
        ],
        1,
    ),
    # Nothing complete: no best trial on either side.
    "only-pruned-and-diverged": (
        "val_acc",
        [
            Outcome(TrialState.PRUNED, (*RISING, 0.95), LOSSES),
            Outcome(TrialState.PRUNED, (0.1, 0.1, 0.1, 0.1), (2.3, 9.0, NAN, NAN)),
        ],
        None,
    ),
}
BEST_TRIAL_GRID = [0.3, 0.1, 0.03, 0.01, 0.003, 0.001, 0.0003]


@pytest.mark.parametrize(
    ("objective", "outcomes", "expected"),
    list(BEST_TRIAL_STUDIES.values()),
    ids=list(BEST_TRIAL_STUDIES),
)
def test_the_api_and_the_study_summary_name_the_same_best_trial(
    db: Database, tmp_path: Path, objective: str, outcomes: list[Outcome], expected: int | None
) -> None:
    study_id = _submit(
        db, tmp_path, objective=objective, max_parallel=8, search={"grid": BEST_TRIAL_GRID}
    )
    run_outcomes(db, study_id, outcomes)

    api_best = store.get_study(db, study_id).best_trial
    summary = store.study_diagnosis(db, study_id)

    assert (api_best.number if api_best else None) == expected
    assert summary.best_trial == expected
    if api_best is not None:
        assert summary.best_lr == api_best.lr == BEST_TRIAL_GRID[expected or 0]
        assert summary.best_value == api_best.value


def test_a_summary_stored_as_a_plain_dict_still_reads(db: Database, tmp_path: Path) -> None:
    """Rows written before TrialSummary existed hold a JSON object with some of its keys
    (NaN as Python's token): they read back as the model, NaN served as null."""
    study_id = _submit(db, tmp_path, search={"grid": [0.1]})
    trial_id = store.list_trials(db, study_id).data[0].id
    old = '{"num_classes": 10, "final_val_acc": 0.5, "final_val_loss": NaN, "best_epoch": 2}'
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE sweepdoc_trials SET summary = :s WHERE id = :id"),
            {"s": old, "id": trial_id},
        )
    row = store.trial_row(db, trial_id)
    assert isinstance(row.summary, TrialSummary) and math.isnan(row.summary.final_val_loss or 0)
    detail = store.get_trial(db, trial_id)
    assert (detail.final_val_acc, detail.final_val_loss, detail.best_epoch) == (0.5, None, 2)


def test_a_label_outside_its_enum_is_refused_on_write(db: Database, tmp_path: Path) -> None:
    _submit(db, tmp_path, search={"grid": [0.1]})
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    with pytest.raises(StatementError, match="'sleeping' is not a valid Label"):
        queue.finish(db, claim, state=TrialState.COMPLETE, label="sleeping")


def _optuna_study_names(url: str) -> list[str]:
    """Every Optuna study in the database, as Optuna itself lists them."""
    storage = optuna_bridge.optuna_storage(url)
    return sorted(s.study_name for s in optuna.get_all_study_summaries(storage))


def test_the_queue_limit_holds_for_concurrent_submissions(db: Database, tmp_path: Path) -> None:
    """Six submissions released by one barrier, each on its own engine (as concurrent API
    requests have), against a limit of one: exactly one is queued, the others are refused,
    and the refused ones leave no Optuna study behind (issue 14: all six were accepted)."""
    contenders = 6
    start = threading.Barrier(contenders)
    outcomes: dict[int, str] = {}
    spec = parse_spec(tiny_spec())

    def submit(index: int) -> None:
        own = Database(db.url)
        try:
            start.wait(timeout=60)
            store.submit_study(own, spec, artifacts_dir=tmp_path / "a", max_unfinished=1)
            outcomes[index] = "queued"
        except QueueFullError as exc:
            assert (exc.unfinished, exc.limit) == (1, 1)
            outcomes[index] = "refused"
        finally:
            own.dispose()

    run_in_threads(submit, contenders)
    assert sorted(outcomes.values()) == ["queued"] + ["refused"] * (contenders - 1)
    listed = store.list_studies(db).data
    assert len(listed) == 1
    assert _optuna_study_names(db.url) == [listed[0].optuna_study_name]


def test_a_failed_insert_removes_the_optuna_study_it_created(db: Database, tmp_path: Path) -> None:
    """A name too long for its column (which StudySpec itself refuses; forced here past the
    validation) fails the insert on PostgreSQL: the Optuna study created before must go."""
    spec = parse_spec(tiny_spec()).model_copy(update={"name": "n" * 200})
    if not db.is_postgres:
        pytest.skip("SQLite stores a string of any length in a VARCHAR(80) column")
    with pytest.raises(DataError):
        store.submit_study(db, spec, artifacts_dir=tmp_path)
    assert _optuna_study_names(db.url) == []
    assert store.list_studies(db).count == 0


def test_a_long_generated_name_fits_its_column(db: Database, tmp_path: Path) -> None:
    """On PostgreSQL a generated name over 80 characters failed the insert (500, and an
    orphaned Optuna study): generated names are cut to fit."""
    folder = "d" * 150
    (tmp_path / folder).mkdir()
    spec = parse_spec({**tiny_spec(), "dataset": f"imagefolder:{folder}"})

    study = store.submit_study(db, spec, artifacts_dir=tmp_path)

    assert len(study.name) == MAX_NAME_CHARS
    assert _optuna_study_names(db.url) == [study.optuna_study_name]


def test_delete_removes_rows_optuna_study_and_files_of_a_cancelled_study(
    db: Database, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    kept = _submit(db, tmp_path)
    study_id = _submit(db, tmp_path)
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None and claim.study_id == kept  # the other study's slot runs
    doomed = store.get_study(db, study_id)
    trial_ids = [t.id for t in store.list_trials(db, study_id).data]
    plot = artifacts / "plots" / f"trial-{trial_ids[0]}-attempt-1.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot.write_bytes(b"png")
    optuna_study = optuna.load_study(
        study_name=doomed.optuna_study_name, storage=optuna_bridge.optuna_storage(db.url)
    )
    upload = tmp_path / "note.txt"
    upload.write_text("an artifact of the study")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=optuna.artifacts.FileSystemArtifactStore(str(artifacts)),
        file_path=str(upload),
        study_or_trial=optuna_study,
    )
    assert (artifacts / artifact_id).exists()

    with pytest.raises(ConflictError, match="cancel it first"):
        store.delete_study(db, study_id, artifacts_dir=artifacts)
    store.cancel_study(db, study_id)
    store.delete_study(db, study_id, artifacts_dir=artifacts)

    with pytest.raises(NotFoundError):
        store.get_study(db, study_id)
    for trial_id in trial_ids:
        with pytest.raises(NotFoundError):
            store.get_trial(db, trial_id)
    assert not plot.exists() and not (artifacts / artifact_id).exists()
    assert _optuna_study_names(db.url) == [store.get_study(db, kept).optuna_study_name]
    with db.engine.connect() as conn:
        left = conn.execute(
            text("SELECT count(*) FROM sweepdoc_trials WHERE study_id = :s"), {"s": study_id}
        ).scalar()
    assert left == 0
    with pytest.raises(NotFoundError):
        store.delete_study(db, study_id, artifacts_dir=artifacts)


def test_a_cancelled_study_with_a_running_trial_is_deleted_only_once_it_stopped(
    db: Database, tmp_path: Path
) -> None:
    study_id = _submit(db, tmp_path, search={"grid": [0.1, 0.01]})
    claim = queue.claim_next(db, worker="w", device="cpu")
    assert claim is not None
    start_claimed_trial(db, claim)
    store.cancel_study(db, study_id)

    with pytest.raises(ConflictError, match="still running"):
        store.delete_study(db, study_id, artifacts_dir=tmp_path)
    assert store.get_study(db, study_id).counts[TrialState.RUNNING] == 1

    record = {"epoch": 1, "train_loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5}
    assert queue.record_epoch(db, claim, record).owned
    assert queue.finish(db, claim, state=TrialState.PRUNED)
    store.delete_study(db, study_id, artifacts_dir=tmp_path)
    assert store.list_studies(db).count == 0
    with db.engine.connect() as conn:
        epochs = conn.execute(text("SELECT count(*) FROM sweepdoc_epochs")).scalar()
    assert epochs == 0


def test_a_stored_spec_todays_rules_refuse_gets_a_summary_without_a_follow_up(
    db: Database, tmp_path: Path
) -> None:
    """A spec stored by an older version that the current StudySpec refuses (here a field
    since removed) made the study summary a 500: it now plans no follow-up, saying why."""
    study_id = _submit(db, tmp_path)
    old = {**tiny_spec(), "train": {**tiny_spec()["train"], "legacy_knob": 2}}
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE sweepdoc_studies SET spec = :s WHERE id = :id"),
            {"s": json.dumps(old), "id": study_id},
        )

    summary = store.study_diagnosis(db, study_id)

    assert summary.followup_spec is None
    assert "No follow-up" in summary.next_step and "train.legacy_knob" in summary.next_step
