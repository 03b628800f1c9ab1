"""Resume instead of restart: a slot's next attempt continues from the last epoch its
previous attempt finished (a worker killed, reaped, or stopped and handed the slot back).

The epoch state lives in the artifacts folder, one file per slot
(``<artifacts_dir>/resume/<trial_id>.pt``): the trainer writes it after every epoch,
atomically, once the epoch's row is stored (``train(epoch_state_path=...)``). When an
attempt starts, ``begin`` decides:

- no file, a file it cannot read, or one of another config or device type: a fresh start
  (the file is deleted, so a stale one is never picked up later);
- a file of epoch k is used when the rows of the slot's latest attempt that stored any hold
  epochs 1..k in order. The state is written after epoch k's row, so a worker killed between
  the two leaves rows 1..k+1 with state k: the attempt resumes after k and trains epoch k+1
  again (its row replaced). A state ahead of the rows is never used: the missing epoch
  would leave a gap.

A resumed attempt takes those rows over as its own (``queue.continue_epochs``); the worker's
recorder adopts them and reports them again to the attempt's new Optuna trial, so the trial
that ends the slot has every epoch as intermediate values (the dashboard shows one curve;
the earlier attempt's trial keeps its partial curve and is FAIL). The file is deleted when
the slot finishes (any final state) and kept when it is handed back or taken away. A slot
that ends without an attempt of its own finishing it (its study cancelled while it waited,
its last retry reaped, its study deleted) leaves its file behind, and so does its running
checkpoint (``studies.checkpoints``): ``sweep``, which each worker runs after every trial and
the server's reconciler every period, deletes both for slots that are finished or gone.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from studies import checkpoints, queue
from studies.db import Database, TrialRow, TrialState
from trainer import RunConfig, TrainerError

if TYPE_CHECKING:
    from trainer import ResumeState

log = logging.getLogger(__name__)

RESUME_DIR = "resume"
# States of a slot that a later attempt may still continue.
_OPEN_STATES = (TrialState.WAITING, TrialState.RUNNING)


@dataclass(frozen=True)
class Resumption:
    """Where an attempt starts: after ``state.epoch`` with its earlier ``records``, or
    afresh (``state`` None)."""

    state: ResumeState | None = None
    records: list[dict[str, Any]] = field(default_factory=list)  # epochs 1..state.epoch
    source_attempt: int | None = None  # whose rows these are

    @property
    def epoch(self) -> int:
        return self.state.epoch if self.state is not None else 0


def epoch_state_path(artifacts_dir: Path, trial_id: int) -> Path:
    """The slot's epoch state file."""
    return artifacts_dir / RESUME_DIR / f"{trial_id}.pt"


def begin(
    db: Database, claim: queue.Claim, *, path: Path, config: RunConfig, device: str
) -> Resumption | None:
    """Decide where this attempt starts and take over the rows it continues; None when
    the slot is no longer this attempt's (nothing written)."""
    resumption = _plan(db, claim, path=path, config=config, device=device)
    if not queue.continue_epochs(
        db, claim, source=resumption.source_attempt, upto=resumption.epoch
    ):
        return None
    if resumption.state is not None:
        log.info(
            "trial %s attempt %s resumes after epoch %s (attempt %s's state)",
            claim.trial_id,
            claim.attempt,
            resumption.epoch,
            resumption.source_attempt,
        )
    return resumption


def _plan(
    db: Database, claim: queue.Claim, *, path: Path, config: RunConfig, device: str
) -> Resumption:
    state = _usable_state(path, config, device)
    if state is None:
        return Resumption()
    stored = queue.latest_epochs(db, claim)
    records = stored.records[: state.epoch] if stored is not None else []
    if stored is None or [int(r["epoch"]) for r in records] != list(range(1, state.epoch + 1)):
        have = len(stored.records) if stored is not None else 0
        log.warning(
            "trial %s: epoch state after epoch %s but %s epoch rows stored; starting afresh",
            claim.trial_id,
            state.epoch,
            have,
        )
        discard(path)
        return Resumption()
    return Resumption(state=state, records=records, source_attempt=stored.attempt)


def _usable_state(path: Path, config: RunConfig, device: str) -> ResumeState | None:
    """The file's state when it can continue *config* on *device* exactly, else None (and
    the file is deleted)."""
    from trainer import load_resume_state

    if not path.exists():
        return None
    try:
        state = load_resume_state(path)
    except TrainerError as exc:
        log.warning("%s; starting afresh", exc)
        discard(path)
        return None
    why = state.mismatch(config, device=device)
    if why is not None:
        log.warning("%s: %s; starting afresh", path, why)
        discard(path)
        return None
    return state


def discard(path: Path) -> None:
    """Delete the slot's epoch state (it finished, or the state cannot be used)."""
    # Not there, or its folder is not one (an unusable artifacts folder): nothing to delete.
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        path.unlink()


def sweep(db: Database, artifacts_dir: Path) -> int:
    """Delete the slot files nothing will continue: the epoch states of slots that are
    finished or no longer exist, and the running checkpoints nothing will keep
    (``checkpoints.sweep_running``); the number deleted. Waiting and running slots keep
    theirs."""
    return _sweep_epoch_states(db, artifacts_dir) + checkpoints.sweep_running(db, artifacts_dir)


def _sweep_epoch_states(db: Database, artifacts_dir: Path) -> int:
    files = {}
    for path in (artifacts_dir / RESUME_DIR).glob("*.pt"):
        if path.stem.isdigit():
            files[int(path.stem)] = path
    if not files:
        return 0
    with db.session() as session:
        open_slots = set(
            session.scalars(
                select(TrialRow.id).where(TrialRow.id.in_(files), TrialRow.state.in_(_OPEN_STATES))
            )
        )
    stale = [path for trial_id, path in files.items() if trial_id not in open_slots]
    for path in stale:
        discard(path)
    return len(stale)
