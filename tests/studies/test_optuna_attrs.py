"""A trial's attributes and dashboard note in one Optuna transaction (issue 15's per-trial
overhead): what the dashboard reads back is what Optuna's and optuna-dashboard's own calls
would have written."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.storages import RDBStorage
from optuna_dashboard import get_note, save_note
from sqlalchemy import event

from studies.optuna_attrs import write_trial_attrs

LONG = "x" * 5000  # three of optuna-dashboard's chunks (2045 characters each)


def _trial(storage: RDBStorage | None) -> tuple[optuna.Study, optuna.Trial]:
    study = optuna.create_study(storage=storage, direction="maximize")
    return study, study.ask()


@pytest.fixture
def sqlite_storage(tmp_path: Path) -> RDBStorage:
    return RDBStorage(f"sqlite:///{tmp_path / 'optuna.db'}")


def test_attributes_and_note_land_in_one_transaction(sqlite_storage: RDBStorage) -> None:
    study, trial = _trial(sqlite_storage)
    commits: list[object] = []
    event.listen(sqlite_storage.engine, "commit", commits.append)

    write_trial_attrs(
        trial,
        storage_trial_id=trial._trial_id,
        user={"label": "healthy", "confidence": 0.9},
        system={"artifacts:abc": '{"artifact_id": "abc"}'},
        note=LONG,
    )

    assert len(commits) == 1
    frozen = study.trials[0]
    assert frozen.user_attrs == {"label": "healthy", "confidence": 0.9}
    assert frozen.system_attrs["artifacts:abc"] == '{"artifact_id": "abc"}'
    assert get_note(trial) == LONG


@pytest.mark.parametrize("backend", ["sqlite", "in-memory"])
def test_a_note_follows_optuna_dashboards_versions_both_ways(
    sqlite_storage: RDBStorage, backend: str
) -> None:
    """Written over a longer note (the dashboard's own), the earlier chunks are blanked and
    the version moves on; the dashboard's next save moves on from ours."""
    study, trial = _trial(sqlite_storage if backend == "sqlite" else None)
    save_note(trial, LONG)  # version 1, three chunks

    write_trial_attrs(trial, storage_trial_id=trial._trial_id, user={}, note="short")
    assert get_note(trial) == "short"
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert attrs[f"dashboard:{trial._trial_id}:note_ver"] == 2

    save_note(trial, "edited in the dashboard")
    assert get_note(trial) == "edited in the dashboard"
    attrs = study._storage.get_study_system_attrs(study._study_id)
    assert attrs[f"dashboard:{trial._trial_id}:note_ver"] == 3


def test_without_a_note_only_the_attributes_are_written(sqlite_storage: RDBStorage) -> None:
    study, trial = _trial(sqlite_storage)
    write_trial_attrs(trial, storage_trial_id=trial._trial_id, user={"sweepdoc_attempt": 2})
    assert study.trials[0].user_attrs == {"sweepdoc_attempt": 2}
    assert get_note(trial) == ""
