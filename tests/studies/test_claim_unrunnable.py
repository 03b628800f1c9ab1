"""A slot whose study this worker cannot load (a plugin the server has is missing here) is
failed with the reason at claim, and the worker goes on: real queue, real database file."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState as OptunaState
from sqlalchemy import update

from studies import queue, store
from studies.db import Database, StudyRow, TrialRow, TrialState
from studies.optuna_bridge import optuna_storage
from studies.spec import parse_spec
from tests.studies.conftest import tiny_spec


def test_a_study_this_worker_cannot_load_fails_its_slot_with_the_reason(
    db: Database, tmp_path: Path
) -> None:
    def submit(name: str) -> int:
        spec = parse_spec(tiny_spec(name=name, search={"grid": [0.1]}))
        return store.submit_study(db, spec, artifacts_dir=tmp_path).id

    unrunnable, runnable = submit("needs-plugin"), submit("plain")
    # As stored by a server that has the plugin; this process has none of that name.
    with db.session() as session:
        spec = session.get_one(StudyRow, unrunnable).spec
        spec["model"]["arch"] = "plugin:not-installed-here"
        session.execute(update(StudyRow).where(StudyRow.id == unrunnable).values(spec=spec))

    claim = queue.claim_next(db, worker="w1", device="cpu")

    # The worker got the next study's slot instead of crashing on the first.
    assert claim is not None and claim.study_id == runnable
    trial = store.list_trials(db, unrunnable).data[0]
    detail = store.get_trial(db, trial.id)
    assert detail.state is TrialState.FAILED
    assert "worker w1 cannot run this study" in (detail.error or "")
    assert "model.arch" in (detail.error or "") and "not-installed-here" in (detail.error or "")
    assert [(a.state, a.worker) for a in detail.attempts] == [(TrialState.FAILED, "w1")]
    assert queue.claim_next(db, worker="w1", device="cpu") is None  # nothing else to take
    # The grid point's enqueued Optuna trial fails with it (the dashboard shows no trial
    # waiting for a worker that gave up on it).
    with db.session() as session:
        optuna_trial_id = session.get_one(TrialRow, trial.id).optuna_trial_id
    assert optuna_trial_id is not None
    assert optuna_storage(db.url).get_trial(optuna_trial_id).state is OptunaState.FAIL
