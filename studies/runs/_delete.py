"""Deleting an external run: its row, its epochs and its Optuna trial, in one transaction.

Optuna has no call that deletes one trial, so its rows are deleted here, in the tables of
Optuna's RDB schema (``trials`` and the ``trial_*`` tables that hang off it, and the
dashboard's note of the trial in ``study_system_attributes``). Optuna numbers a new trial
by counting the study's earlier trials (``TrialModel.count_past_trials``), so a gap would
hand the next run the number of an existing one: the project's later trials, and the runs
that name them, move down by one, and the numbers stay 0, 1, 2, … as Optuna assumes.

Any run may be deleted, a running one too (a loop that crashed leaves its run running for
ever; an empty run may be left by a create whose answer was lost). A loop still posting to
a deleted run gets 404. The project's Optuna study stays, even empty: it keeps the objective
its first run chose. Deleting twice answers 404 the second time, as deleting a study does.
"""

from __future__ import annotations

from sqlalchemy import column, delete, select, table, update

from studies.db import Database, RunEpochRow, RunRow
from studies.runs._store import run_row

# Optuna's tables, as far as deleting a trial needs them (its schema: optuna/storages/_rdb).
_TRIALS = table("trials", column("trial_id"), column("study_id"), column("number"))
_TRIAL_TABLES = tuple(
    table(name, column("trial_id"))
    for name in (
        "trial_params",
        "trial_values",
        "trial_intermediate_values",
        "trial_user_attributes",
        "trial_system_attributes",
        "trial_heartbeats",
    )
)
_STUDY_SYSTEM_ATTRS = table("study_system_attributes", column("study_id"), column("key"))


def _dashboard_note_keys(trial_id: int) -> str:
    """The LIKE pattern of a trial's note in optuna_dashboard (``_note.note_ver_key`` and
    ``note_str_key_prefix``: ``dashboard:<trial_id>:note_…``)."""
    return f"dashboard:{trial_id}:note%"


def delete_run(db: Database, run_id: int) -> None:
    """Delete run *run_id*, its epochs and its Optuna trial; NotFoundError → 404."""
    with db.session() as session:
        row = run_row(session, run_id, lock=True)
        trial_id, study_name = row.optuna_trial_id, row.optuna_study_name
        study_id = session.scalar(select(_TRIALS.c.study_id).where(_TRIALS.c.trial_id == trial_id))
        session.execute(delete(RunEpochRow).where(RunEpochRow.run_id == run_id))
        session.execute(delete(RunRow).where(RunRow.id == run_id))
        if study_id is None:
            return  # its trial is gone already (the project's study deleted by hand)
        for trial_table in _TRIAL_TABLES:
            session.execute(delete(trial_table).where(trial_table.c.trial_id == trial_id))
        session.execute(delete(_TRIALS).where(_TRIALS.c.trial_id == trial_id))
        session.execute(
            delete(_STUDY_SYSTEM_ATTRS).where(
                _STUDY_SYSTEM_ATTRS.c.study_id == study_id,
                _STUDY_SYSTEM_ATTRS.c.key.like(_dashboard_note_keys(trial_id)),
            )
        )
        session.execute(
            update(_TRIALS)
            .where(_TRIALS.c.study_id == study_id, _TRIALS.c.trial_id > trial_id)
            .values(number=_TRIALS.c.number - 1)
        )
        session.execute(
            update(RunRow)
            .where(RunRow.optuna_study_name == study_name, RunRow.optuna_trial_id > trial_id)
            .values(optuna_trial_number=RunRow.optuna_trial_number - 1)
            .execution_options(synchronize_session=False)
        )
