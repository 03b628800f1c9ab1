"""The trained models to take home: each complete trial's best checkpoint in the artifact
store, the study's retention, the store's size cap, and ``train.init_from: "trial:<id>"``.

Where the files live (under the artifacts folder, names from ids only, never user input):

- ``checkpoints/running/<trial_id>.pt``: the trainer writes the running trial's best epoch
  here (best by the study's objective: ``train(checkpoint_path=..., best_by=...)``). The
  slot's next attempt continues it after a resume, as it continues the epoch state.
- ``checkpoints/<study_id>/<trial_id>.pt``: the stored checkpoint, recorded in the trial's
  row (``checkpoint_key``: this path relative to the artifacts folder; ``checkpoint_epoch``;
  ``checkpoint_bytes``). The row is the truth: only a recorded key is ever served.

``keep_checkpoint`` runs once per finished slot, after the queue recorded its end (the
worker's ``TrialRow`` is final then). It is the one entry point for workers, packed runs
included (one call per member trial). Retention and the cap are decided there, in one
transaction under a lock every keep takes, so two workers finishing at once count each
other's files:

- Retention: the study keeps the checkpoints of its best ``keep_checkpoints`` trials (the
  spec's field, default 3) by its objective, ranked as the study's best trial is
  (``studies.results``). It is applied as each trial completes rather than once at the end:
  trials only ever join the completed set, so a checkpoint that falls out of the best k
  can never get back in, and the study ends with exactly the k best (the files of the
  others are deleted as soon as that is certain, so the store never holds them).
- Cap: ``max_bytes`` (``SWEEPDOC_MAX_ARTIFACT_BYTES``) bounds the bytes of all stored
  checkpoints (their sizes are in the rows). A checkpoint that would pass it, after what
  retention frees in the same step, is skipped: its file deleted, a warning on the trial,
  the trial still complete.

Every checkpoint a trial does not get, or loses, leaves one warning on its row starting
with ``checkpoint `` (``TrialRow.warnings``, shown by the API); ``why_no_checkpoint``
turns that, or the trial's state, into the reason a download gets with its 404.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from studies import resume
from studies.db import Database, StudyRow, TrialRow, TrialState
from studies.errors import FieldError, NotFoundError, SpecError
from studies.results import Candidate, rank_trials
from studies.spec import StudySpec

__all__ = [
    "CHECKPOINTS_DIR",
    "StoredCheckpoint",
    "check_init_from",
    "delete_study_checkpoints",
    "init_from_file",
    "keep_checkpoint",
    "running_path",
    "trial_checkpoint",
    "why_no_checkpoint",
]

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
RUNNING_DIR = f"{CHECKPOINTS_DIR}/running"
# Every warning about a trial's checkpoint starts so (the 404's reason is found by it).
_WARNING_PREFIX = "checkpoint "
# Arbitrary constant key of the PostgreSQL advisory lock that serializes the store's
# bookkeeping (distinct from the schema's and the submissions' keys).
_STORE_LOCK_KEY = 0x5D0C_C4E7


def running_path(artifacts_dir: Path, trial_id: int) -> Path:
    """Where the trainer writes the running trial's best checkpoint."""
    return artifacts_dir / RUNNING_DIR / f"{trial_id}.pt"


def _stored_key(study_id: int, trial_id: int) -> str:
    return f"{CHECKPOINTS_DIR}/{study_id}/{trial_id}.pt"


@dataclass(frozen=True)
class _Stored:
    """One trial of the study that holds a checkpoint, or the one just completed."""

    trial_id: int
    number: int
    value: float | None
    key: str | None
    size: int


def keep_checkpoint(
    db: Database,
    artifacts_dir: Path,
    trial_id: int,
    file: Path,
    *,
    max_bytes: int | None = None,
) -> str | None:
    """Store trial *trial_id*'s best checkpoint *file* once its slot has finished; call
    it after every finish (any state), with the file the trainer wrote (``running_path``).

    A complete trial's file moves to ``checkpoints/<study>/<trial>.pt`` and its row records
    it, unless retention (the study's best ``keep_checkpoints``) or *max_bytes* (the store's
    cap, None: none) says otherwise; any other outcome deletes the file. Returns the warning
    added to the trial's row (store full, not among the best, file missing), else None.
    Other trials' checkpoints that fall out of the study's best are deleted meanwhile.
    """
    with db.session() as session:
        row = session.get(TrialRow, trial_id)
        study = session.get(StudyRow, row.study_id) if row is not None else None
    if row is None or study is None or row.state is not TrialState.COMPLETE:
        _unlink(file)  # pruned, failed, or gone: nothing to keep
        return None
    spec = StudySpec.model_validate(study.spec)
    if not file.is_file():
        return _warn(
            db,
            trial_id,
            "checkpoint missing: no best-epoch file was written for this trial (a resumed "
            "trial whose earlier attempt ran on a machine that does not share this artifacts "
            "folder, or a run that writes none)",
        )
    from trainer import checkpoint_epoch  # torch: only where a checkpoint is read

    epoch, size = checkpoint_epoch(file), file.stat().st_size
    evicted: list[Path] = []
    with db.session() as session:
        _lock_store(session, db)
        stored = [s for s in _study_checkpoints(session, row.study_id) if s.trial_id != trial_id]
        ranked = rank_trials(
            [*stored, _Stored(trial_id, row.number, _objective(row), None, size)],
            maximize=spec.objective.direction == "maximize",
            candidate=lambda s: Candidate(number=s.number, complete=True, value=s.value),
        )
        kept, dropped = ranked[: spec.keep_checkpoints], ranked[spec.keep_checkpoints :]
        retention = (
            f"not among the study's best {spec.keep_checkpoints} by {spec.objective.value} "
            "(its keep_checkpoints)"
        )
        warning: str | None = None
        if trial_id not in {s.trial_id for s in kept}:
            warning = f"checkpoint deleted: {retention}"
        elif max_bytes is not None:
            used = _used_bytes(session) - sum(s.size for s in dropped)
            if used + size > max_bytes:
                warning = (
                    f"checkpoint skipped: the artifact store is full ({used} of "
                    f"SWEEPDOC_MAX_ARTIFACT_BYTES={max_bytes} bytes used by checkpoints, this "
                    f"one is {size} bytes); the trial is complete without it"
                )
                dropped = []  # nothing is evicted to make room: the others are better
        for other in dropped:
            if other.key is not None:
                _forget(session, other.trial_id, f"checkpoint deleted: {retention}")
                evicted.append(artifacts_dir / other.key)
        if warning is None:
            key = _stored_key(row.study_id, trial_id)
            (artifacts_dir / key).parent.mkdir(parents=True, exist_ok=True)
            # Moved before the commit, so a recorded key always names a file; a commit
            # that fails leaves an unrecorded file, which _sweep_study deletes.
            os.replace(file, artifacts_dir / key)
            target = session.get(TrialRow, trial_id)
            assert target is not None  # read above; rows are deleted only with the study
            target.checkpoint_key, target.checkpoint_epoch = key, epoch
            target.checkpoint_bytes = size
        else:
            _append_warning(session, trial_id, warning)
    for path in evicted:
        _unlink(path)
    if warning is not None:
        _unlink(file)
        log.info("trial %s: %s", trial_id, warning)
    _sweep(db, artifacts_dir, row.study_id)
    return warning


def _objective(row: TrialRow) -> float | None:
    return row.summary.objective_value if row.summary is not None else None


def _lock_store(session: Session, db: Database) -> None:
    """Make this transaction the only one deciding what the store keeps until it ends."""
    if db.is_postgres:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _STORE_LOCK_KEY})
    else:
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")


def _study_checkpoints(session: Session, study_id: int) -> list[_Stored]:
    rows = session.scalars(
        select(TrialRow).where(
            TrialRow.study_id == study_id,
            TrialRow.checkpoint_key.is_not(None),
            TrialRow.state == TrialState.COMPLETE,
        )
    )
    return [
        _Stored(r.id, r.number, _objective(r), r.checkpoint_key, r.checkpoint_bytes or 0)
        for r in rows
    ]


def _used_bytes(session: Session) -> int:
    used = session.scalar(
        select(func.coalesce(func.sum(TrialRow.checkpoint_bytes), 0)).where(
            TrialRow.checkpoint_key.is_not(None)
        )
    )
    return int(used or 0)


def _forget(session: Session, trial_id: int, reason: str) -> None:
    """Clear the trial's checkpoint columns and say why on its row."""
    row = session.get(TrialRow, trial_id)
    if row is not None:
        row.checkpoint_key = row.checkpoint_epoch = row.checkpoint_bytes = None
        _append_warning(session, trial_id, reason)


def _append_warning(session: Session, trial_id: int, warning: str) -> None:
    row = session.get(TrialRow, trial_id)
    if row is not None:
        # A new list, so the JSON column sees the change (it does not track mutation).
        row.warnings = [*(row.warnings or []), warning]


def _warn(db: Database, trial_id: int, warning: str) -> str:
    with db.session() as session:
        _append_warning(session, trial_id, warning)
    log.warning("trial %s: %s", trial_id, warning)
    return warning


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _sweep(db: Database, artifacts_dir: Path, study_id: int) -> None:
    """Delete files nothing will record: running checkpoints of slots that ended without
    a keep (failed by an error, reaped out of retries, their study deleted), and files in
    the study's folder that no row records (a keep whose commit failed)."""
    resume.sweep(db, artifacts_dir, folder=RUNNING_DIR)
    folder = artifacts_dir / CHECKPOINTS_DIR / str(study_id)
    files = {f"{CHECKPOINTS_DIR}/{study_id}/{p.name}": p for p in folder.glob("*.pt")}
    if not files:
        return
    with db.session() as session:
        recorded = set(
            session.scalars(select(TrialRow.checkpoint_key).where(TrialRow.study_id == study_id))
        )
        ended = set(  # a keep may still be on its way for these: left alone
            session.scalars(
                select(TrialRow.id).where(
                    TrialRow.study_id == study_id,
                    TrialRow.state.not_in((TrialState.WAITING, TrialState.RUNNING)),
                )
            )
        )
    for key, path in files.items():
        if key not in recorded and path.stem.isdigit() and int(path.stem) in ended:
            _unlink(path)


def delete_study_checkpoints(artifacts_dir: Path, study_id: int, trial_ids: list[int]) -> None:
    """Delete a deleted study's stored and running checkpoint files."""
    folder = artifacts_dir / CHECKPOINTS_DIR / str(study_id)
    for path in folder.glob("*.pt"):
        _unlink(path)
    with contextlib.suppress(OSError):
        folder.rmdir()
    for trial_id in trial_ids:
        _unlink(running_path(artifacts_dir, trial_id))


def why_no_checkpoint(row: TrialRow) -> str:
    """Why trial *row* has no stored checkpoint, in words a user can act on."""
    name = f"trial {row.id}"
    if row.state in (TrialState.WAITING, TrialState.RUNNING):
        return f"{name} is {row.state.value}: its checkpoint is stored once it completes"
    if row.state is not TrialState.COMPLETE:
        return f"{name} ended {row.state.value}: only complete trials keep a checkpoint"
    if row.lr_range is not None:
        return f"{name} is an LR range test: its short ramp trains no model worth keeping"
    said = [w for w in row.warnings or [] if w.startswith(_WARNING_PREFIX)]
    if said:
        return f"{name} has no checkpoint: {said[-1]}"
    return f"{name} has no checkpoint: it completed before checkpoints were kept"


@dataclass(frozen=True)
class StoredCheckpoint:
    """A trial's checkpoint in the artifact store."""

    path: Path
    study_id: int
    trial_id: int
    epoch: int | None

    @property
    def download_name(self) -> str:
        """The file name a download suggests (ids only: unique, and safe in any header)."""
        return f"sweepdoc-study-{self.study_id}-trial-{self.trial_id}.pt"


def trial_checkpoint(db: Database, trial_id: int, *, artifacts_dir: Path) -> StoredCheckpoint:
    """The stored checkpoint of trial *trial_id*; NotFoundError with the reason when there
    is none (unknown trial, not complete, deleted by retention, skipped: store full)."""
    with db.session() as session:
        row = session.get(TrialRow, trial_id)
    if row is None:
        raise NotFoundError(f"trial {trial_id} does not exist")
    if row.checkpoint_key is None:
        raise NotFoundError(why_no_checkpoint(row))
    path = artifacts_dir / row.checkpoint_key
    if not path.is_file():
        raise NotFoundError(
            f"trial {trial_id}'s checkpoint is recorded but its file is missing from the "
            "artifact store (deleted by hand, or this server does not share the workers' "
            "artifacts folder)"
        )
    return StoredCheckpoint(path, row.study_id, trial_id, row.checkpoint_epoch)


def check_init_from(db: Database, spec: StudySpec) -> None:
    """A ``train.init_from: "trial:<id>"`` must name a trial with a stored checkpoint
    (SpecError naming train.init_from otherwise); other specs pass as they are."""
    trial_id = spec.train.init_from_trial
    if trial_id is None:
        return
    with db.session() as session:
        row = session.get(TrialRow, trial_id)
    if row is None:
        reason = f"trial {trial_id} does not exist"
    elif row.checkpoint_key is None:
        reason = why_no_checkpoint(row)
    else:
        return
    raise SpecError([FieldError("train.init_from", f"cannot fine-tune from it: {reason}")])


def init_from_file(db: Database, artifacts_dir: Path, spec: StudySpec) -> Path | None:
    """The stored file a ``trial:<id>`` init_from stands for (None for a file path or no
    init_from). Raises SpecError naming train.init_from when the checkpoint is gone since
    the study was submitted (retention, or its study deleted)."""
    trial_id = spec.train.init_from_trial
    if trial_id is None:
        return None
    check_init_from(db, spec)
    try:
        return trial_checkpoint(db, trial_id, artifacts_dir=artifacts_dir).path
    except NotFoundError as exc:
        raise SpecError([FieldError("train.init_from", str(exc))]) from exc
