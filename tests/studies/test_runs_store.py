"""External runs in the store, on SQLite and PostgreSQL: an epoch sent by many clients at
once is stored once and answered alike; a run's diagnosis is held to its project's best run
as a trial's is held to its study's best trial; deleting a run keeps Optuna's numbering."""

from __future__ import annotations

import math
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from studies import optuna_bridge, runs
from studies.db import Database, RunEpochRow, RunState
from studies.errors import ConflictError, NotFoundError
from studies.runs._store import optuna_writes, run_row, sync_ending
from tests.studies.conftest import optuna_trials
from tests.waiting import run_in_threads

EPOCHS = [
    {"train_loss": 2.0 - 0.3 * i, "val_loss": 2.1 - 0.3 * i, "val_acc": 0.3 + 0.1 * i}
    for i in range(4)
]


def start(db: Database, project: str, **body: Any) -> runs.RunPublic:
    return runs.create_run(db, runs.RunCreate(project=project, name="r", num_classes=10, **body))


def log(db: Database, run_id: int, epochs: list[dict[str, float]]) -> list[runs.Verdict]:
    return [
        runs.log_epoch(db, run_id, runs.EpochLog(epoch=epoch, **values))
        for epoch, values in enumerate(epochs, start=1)
    ]


def test_one_epoch_sent_by_many_clients_at_once_is_stored_once(db: Database) -> None:
    run = start(db, "concurrent")
    barrier = threading.Barrier(6)
    answers: list[runs.Verdict] = []
    errors: list[BaseException] = []

    def send(_index: int) -> None:
        barrier.wait()
        try:
            answers.append(runs.log_epoch(db, run.id, runs.EpochLog(epoch=1, **EPOCHS[0])))
        except BaseException as exc:  # collected: the assertion below shows it
            errors.append(exc)

    run_in_threads(send, 6)

    assert errors == []
    assert len(answers) == 6 and all(answer == answers[0] for answer in answers)
    with db.session() as session:
        stored = session.scalar(
            select(func.count()).select_from(RunEpochRow).where(RunEpochRow.run_id == run.id)
        )
    assert stored == 1
    assert runs.get_run(db, run.id).epochs_done == 1


def test_a_run_is_held_to_its_projects_best_run(db: Database) -> None:
    best = start(db, "bar")
    log(db, best.id, EPOCHS)
    runs.finish_run(db, best.id)
    weaker = start(db, "bar")
    log(db, weaker.id, [{**e, "val_acc": e["val_acc"] / 2} for e in EPOCHS])
    runs.finish_run(db, weaker.id)

    assert runs.run_diagnosis(db, best.id).evidence.study_best_val_acc == pytest.approx(0.6)
    # The weaker run is measured against the better one, not against itself.
    assert runs.run_diagnosis(db, weaker.id).evidence.study_best_val_acc == pytest.approx(0.6)
    # Another project's runs do not count.
    alone = start(db, "other")
    log(db, alone.id, [{**e, "val_acc": e["val_acc"] / 2} for e in EPOCHS])
    runs.finish_run(db, alone.id)
    assert runs.run_diagnosis(db, alone.id).evidence.study_best_val_acc == pytest.approx(0.3)


def test_a_stopped_run_takes_no_more_epochs(db: Database) -> None:
    run = start(db, "stops")
    (verdict,) = log(db, run.id, [{**EPOCHS[0], "train_loss": float("nan")}])
    assert verdict.stop and verdict.state == "stopped"
    with pytest.raises(ConflictError, match="takes no more epochs"):
        runs.log_epoch(db, run.id, runs.EpochLog(epoch=2, **EPOCHS[1]))


def test_deleting_a_run_renumbers_the_projects_later_trials(db: Database) -> None:
    """On both databases: the run, its epochs and its Optuna trial go in one transaction;
    Optuna's numbers stay without gaps, so the next run's trial takes a number of its own."""
    first, doomed, last = (start(db, "renumber") for _ in range(3))
    for run in (first, doomed, last):
        log(db, run.id, EPOCHS[:2])
    runs.delete_run(db, doomed.id)
    with pytest.raises(NotFoundError):
        runs.delete_run(db, doomed.id)
    with db.session() as session:
        left = session.scalar(
            select(func.count()).select_from(RunEpochRow).where(RunEpochRow.run_id == doomed.id)
        )
    assert left == 0
    after = start(db, "renumber")
    assert [runs.get_run(db, r.id).optuna_trial_number for r in (first, last, after)] == [0, 1, 2]
    trials = optuna_trials(db.url, runs.study_name("renumber"))
    assert [(t.number, t.user_attrs["sweepdoc_run_id"]) for t in trials] == [
        (0, first.id), (1, last.id), (2, after.id)
    ]


def test_an_epoch_whose_run_is_deleted_meanwhile_answers_not_found(db: Database) -> None:
    """A request holds the run's row (its epoch committed) when a DELETE of the run removes
    the run and its Optuna trial, before the request's Optuna writes: those find no trial.
    The request must answer 404 like any later one, not fail with Optuna's KeyError (a 500
    that schemathesis' two concurrent workers once hit)."""
    run = start(db, "race")
    stopped = log(db, run.id, [{"train_loss": math.nan, "val_loss": math.nan, "val_acc": math.nan}])
    assert stopped[0].state is RunState.STOPPED
    with db.session() as session:
        held = run_row(session, run.id)  # what the racing request loaded

    runs.delete_run(db, run.id)

    with pytest.raises(NotFoundError):
        sync_ending(db, held)
    with pytest.raises(NotFoundError), optuna_writes(db, run.id):
        optuna_bridge.optuna_storage(db.url).set_trial_intermediate_value(
            held.optuna_trial_id, 2, 0.5
        )
