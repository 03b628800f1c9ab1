"""A stored checkpoint found by trial (downloads, ``trial:<id>`` init_from), or the reason
there is none."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studies.checkpoints._keep import WARNING_PREFIX
from studies.db import Database, TrialRow, TrialState
from studies.errors import FieldError, NotFoundError, SpecError
from studies.spec import StudySpec


def why_no_checkpoint(row: TrialRow) -> str:
    """Why trial *row* has no stored checkpoint, in words a user can act on."""
    name = f"trial {row.id}"
    if row.state in (TrialState.WAITING, TrialState.RUNNING):
        return f"{name} is {row.state.value}: its checkpoint is stored once it completes"
    if row.state is not TrialState.COMPLETE:
        return f"{name} ended {row.state.value}: only complete trials keep a checkpoint"
    if row.lr_range is not None:
        return f"{name} is an LR range test: its short ramp trains no model worth keeping"
    said = [w for w in row.warnings or [] if w.startswith(WARNING_PREFIX)]
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
