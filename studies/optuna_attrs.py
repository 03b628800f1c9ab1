"""A trial's attributes and dashboard note written to Optuna in one transaction.

Optuna writes every user attribute, system attribute and note chunk in a transaction of
its own: a finished trial's label, confidence, state, stop reason, curves artifact and
dashboard note took nine, a SQLite commit each, most of what a trial cost outside training
on the digits (issue 15 asks for at most 50 ms). Here they are one transaction, through
the RDB storage's own per-attribute writer; the note is stored as optuna-dashboard's
``save_note`` stores it (the next version number, the body in chunks, chunks of a longer
earlier note blanked), so the dashboard reads and edits it as its own. Optuna has no
public batch writer: a storage without that writer (another Optuna version, a non-RDB
storage) gets the public calls one by one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import RDBStorage
from sqlalchemy import or_
from sqlalchemy.orm import Session


def write_trial_attrs(
    trial: optuna.Trial,
    *,
    storage_trial_id: int,
    user: Mapping[str, Any],
    system: Mapping[str, Any] | None = None,
    note: str | None = None,
) -> None:
    """Set *trial*'s user attributes *user* and system attributes *system*, and save *note*
    as its dashboard note, in one transaction where the storage allows it."""
    system = system or {}
    storage = trial.storage
    # Optuna wraps an RDB storage in a cache that passes attribute writes straight through.
    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, RDBStorage) and hasattr(backend, "_set_trial_attr_without_commit"):
        _in_one_transaction(backend, trial.study._study_id, storage_trial_id, user, system, note)
        return
    for key, value in user.items():
        storage.set_trial_user_attr(storage_trial_id, key, value)
    for key, value in system.items():
        storage.set_trial_system_attr(storage_trial_id, key, value)
    if note is not None:
        from optuna_dashboard import save_note

        save_note(trial, note)


def _in_one_transaction(
    storage: RDBStorage,
    study_id: int,
    trial_id: int,
    user: Mapping[str, Any],
    system: Mapping[str, Any],
    note: str | None,
) -> None:
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    with _create_scoped_session(storage.scoped_session) as session:
        for key, value in user.items():
            storage._set_trial_attr_without_commit(
                session, models.TrialUserAttributeModel, trial_id, key, value
            )
        for key, value in system.items():
            storage._set_trial_attr_without_commit(
                session, models.TrialSystemAttributeModel, trial_id, key, value
            )
        if note is not None:
            _save_note(session, study_id, trial_id, note)


def _save_note(session: Session, study_id: int, trial_id: int, body: str) -> None:
    """optuna-dashboard's ``save_note`` for a trial, inside *session*'s transaction."""
    from optuna.storages._rdb import models

    # Imported on first use, as annotate does: optuna_dashboard takes seconds to import.
    from optuna_dashboard._note import note_str_key_prefix, note_ver_key, split_body

    attrs = models.StudySystemAttributeModel
    version_key, prefix = note_ver_key(trial_id), note_str_key_prefix(trial_id)
    # The note's rows so far (its version, its chunks), in one query.
    rows = {
        row.key: row
        for row in session.query(attrs).filter(
            attrs.study_id == study_id,
            or_(attrs.key == version_key, attrs.key.startswith(prefix, autoescape=True)),
        )
    }
    current = rows.get(version_key)
    version = (int(json.loads(str(current.value_json))) if current is not None else 0) + 1
    chunks = split_body(body, trial_id)
    earlier = sum(1 for key in rows if key.startswith(prefix))
    blanks = {f"{prefix}{i}": "" for i in range(len(chunks), earlier)}
    for key, value in {version_key: version, **chunks, **blanks}.items():
        row = rows.get(key)
        if row is None:
            session.add(attrs(study_id=study_id, key=key, value_json=json.dumps(value)))
        else:
            row.value_json = json.dumps(value)


__all__ = ["write_trial_attrs"]
