"""Storing a finished trial's checkpoint: retention and the cap decided under the store's
lock, the sweeps of files nothing will keep, a deleted study's files (see the package)."""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from studies.db import Database, StudyRow, TrialRow, TrialState
from studies.results import Candidate, rank_trials
from studies.spec import StudySpec

log = logging.getLogger(__name__)

CHECKPOINTS_DIR = "checkpoints"
RUNNING_DIR = f"{CHECKPOINTS_DIR}/running"
# Every warning about a trial's checkpoint starts so (the 404's reason is found by it).
WARNING_PREFIX = "checkpoint "
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
    from trainer import TrainerError, checkpoint_epoch  # torch: only where one is read

    with db.session() as session:
        row = session.get(TrialRow, trial_id)
        study = session.get(StudyRow, row.study_id) if row is not None else None
    if row is None or study is None or row.state is not TrialState.COMPLETE:
        _unlink(file)  # pruned, failed, or gone: nothing to keep
        return None
    if not file.is_file():
        return _warn(
            db,
            trial_id,
            "checkpoint missing: no best-epoch file was written for this trial (a resumed "
            "trial whose earlier attempt ran on a machine that does not share this artifacts "
            "folder, or a run that writes none)",
        )
    try:
        epoch = checkpoint_epoch(file)
    except TrainerError as exc:
        _unlink(file)
        return _warn(db, trial_id, f"checkpoint unreadable, deleted: {exc}")
    warning, evicted = _store(
        db,
        artifacts_dir,
        row,
        StudySpec.model_validate(study.spec),
        file,
        epoch=epoch,
        max_bytes=max_bytes,
    )
    for path in evicted:
        _unlink(path)
    if warning is not None:
        _unlink(file)
        log.info("trial %s: %s", trial_id, warning)
    sweep_running(db, artifacts_dir)
    return warning


def _store(
    db: Database,
    artifacts_dir: Path,
    row: TrialRow,
    spec: StudySpec,
    file: Path,
    *,
    epoch: int,
    max_bytes: int | None,
) -> tuple[str | None, list[Path]]:
    """Retention and the cap for complete trial *row*'s *file*, decided and recorded under
    the store's lock: (the warning that keeps it out, or None once stored; the files of
    other trials retention drops, to delete once committed)."""
    size = file.stat().st_size
    evicted: list[Path] = []
    with db.session() as session:
        _lock_store(session, db)
        stored = [s for s in _study_checkpoints(session, row.study_id) if s.trial_id != row.id]
        ranked = rank_trials(
            [*stored, _Stored(row.id, row.number, _objective(row), None, size)],
            maximize=spec.objective.direction == "maximize",
            candidate=lambda s: Candidate(number=s.number, complete=True, value=s.value),
        )
        kept, dropped = ranked[: spec.keep_checkpoints], ranked[spec.keep_checkpoints :]
        retention = (
            f"not among the study's best {spec.keep_checkpoints} by {spec.objective.value} "
            "(its keep_checkpoints)"
        )
        warning: str | None = None
        if row.id not in {s.trial_id for s in kept}:
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
        if warning is not None:
            _append_warning(session, row.id, warning)
        else:
            key = _stored_key(row.study_id, row.id)
            (artifacts_dir / key).parent.mkdir(parents=True, exist_ok=True)
            # Moved before the commit, so a recorded key always names a file, its data on
            # disk (the trainer's per-epoch writes are not fsync'd: trainer._checkpoint).
            _fsync(file)
            os.replace(file, artifacts_dir / key)
            target = session.get(TrialRow, row.id)
            assert target is not None  # read above; rows are deleted only with the study
            target.checkpoint_key, target.checkpoint_epoch = key, epoch
            target.checkpoint_bytes = size
        session.flush()
        _sweep_study(session, artifacts_dir, row.study_id)
    return warning, evicted


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


def _fsync(path: Path) -> None:
    """Flush *path*'s data to disk: an OS crash cannot leave a committed key naming a file
    whose contents never reached it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def _sweep_study(session: Session, artifacts_dir: Path, study_id: int) -> None:
    """Delete the files in the study's folder that no row records (a keep whose commit
    failed after its move). Under the store's lock, so no keep is between its move and
    its commit meanwhile."""
    folder = artifacts_dir / CHECKPOINTS_DIR / str(study_id)
    files = {f"{CHECKPOINTS_DIR}/{study_id}/{p.name}": p for p in folder.glob("*.pt")}
    if not files:
        return
    recorded = set(
        session.scalars(select(TrialRow.checkpoint_key).where(TrialRow.study_id == study_id))
    )
    for key, path in files.items():
        if key not in recorded:
            _unlink(path)


def sweep_running(db: Database, artifacts_dir: Path) -> int:
    """Delete the running checkpoints nothing will keep: those of slots that failed (an
    error, or out of retries after their workers died), were pruned, or are gone; the
    number deleted. A waiting slot's file is its next attempt's to continue; a complete
    slot's is its worker's to keep right after the finish (deleting it here would race that
    keep). Run after every keep, and with ``resume.sweep`` (each worker after each trial,
    the server's reconciler), so a killed worker's file does not outlive its slot."""
    files = {int(p.stem): p for p in (artifacts_dir / RUNNING_DIR).glob("*.pt") if p.stem.isdigit()}
    if not files:
        return 0
    with db.session() as session:
        wanted = set(
            session.scalars(
                select(TrialRow.id).where(
                    TrialRow.id.in_(files),
                    TrialRow.state.in_(
                        (TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE)
                    ),
                )
            )
        )
    unwanted = [path for trial_id, path in files.items() if trial_id not in wanted]
    for path in unwanted:
        _unlink(path)
    return len(unwanted)


def delete_study_checkpoints(artifacts_dir: Path, study_id: int, trial_ids: list[int]) -> None:
    """Delete a deleted study's stored and running checkpoint files."""
    folder = artifacts_dir / CHECKPOINTS_DIR / str(study_id)
    for path in folder.glob("*.pt"):
        _unlink(path)
    with contextlib.suppress(OSError):
        folder.rmdir()
    for trial_id in trial_ids:
        _unlink(running_path(artifacts_dir, trial_id))
