"""Removing a study's Optuna side: its Optuna study, trials and artifact files."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import optuna
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts.exceptions import ArtifactNotFound

from studies.optuna_bridge import optuna_storage

__all__ = ["delete_optuna_study", "drop_optuna_study"]

logger = logging.getLogger(__name__)

# Optuna records each uploaded artifact as a system attribute "artifacts:<artifact id>" of
# its study or trial (optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX, not exported).
_ARTIFACT_ATTR_PREFIX = "artifacts:"


def _artifact_ids(storage: optuna.storages.BaseStorage, study_id: int) -> list[str]:
    attrs = [storage.get_study_system_attrs(study_id)]
    attrs += [t.system_attrs for t in storage.get_all_trials(study_id, deepcopy=False)]
    return [
        key.removeprefix(_ARTIFACT_ATTR_PREFIX)
        for mapping in attrs
        for key in mapping
        if key.startswith(_ARTIFACT_ATTR_PREFIX)
    ]


def delete_optuna_study(url: str, name: str, *, artifacts_dir: Path | None = None) -> None:
    """Delete the Optuna study *name* with its trials and, under *artifacts_dir*, the files
    of its artifacts (curve plots, dashboard uploads). A study already gone is no error."""
    storage = optuna_storage(url)
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return
    if artifacts_dir is not None:
        store = FileSystemArtifactStore(str(artifacts_dir))
        for artifact_id in _artifact_ids(storage, study_id):
            with contextlib.suppress(ArtifactNotFound):  # removed by an earlier attempt
                store.remove(artifact_id)
    try:
        storage.delete_study(study_id)
    except KeyError:
        return  # deleted meanwhile by another request


def drop_optuna_study(url: str, name: str) -> None:
    """Compensation of a failed submission: delete its Optuna study if it was created.

    Never raises: the submission's own error is what the caller must see. A study that
    cannot be deleted now (the database went away) is logged by name for the operator.
    """
    try:
        delete_optuna_study(url, name)
    except Exception:
        logger.exception("could not remove the Optuna study %r of a failed submission", name)
