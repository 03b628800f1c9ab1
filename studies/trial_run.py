"""One claimed slot's attempt, start to end: its Optuna trial, training as a member of a
pack (``studies.pack_run``, which beats the heartbeat and calls the trainer), and the result
written to Optuna and then to the queue.

Start: the slot's Optuna trial is started (a grid slot's enqueued trial, a retry's fixed
parameters, or the sampler's pick) and the attempt recorded. An attempt after a killed,
reaped or stopped one resumes from the slot's epoch state when it fits the stored epochs
(``studies.resume``); a member that trains alone writes that state after every epoch. Each
epoch is recorded by ``studies.recorder``, per member: a packed member keeps its own epoch
rows, Optuna reports, pruning, live divergence stop and cancel.

End: the diagnosis is written onto the Optuna trial (user attributes ``label``/
``confidence``, a dashboard note, the curves plot listed as an artifact that is rendered
when first opened), then the slot is finished in sweepdoc's queue, fenced by the attempt
number, and only then is the Optuna trial told (COMPLETE; PRUNED for diverged, pruned or
cancelled runs; FAIL on an error, whose text is stored). The queue decides: a worker that
stalled past its grace was reaped and its slot may run again, so its ``finish`` does not
land, its result is dropped and its Optuna trial is failed, never a second COMPLETE of the
point. A tell lost after the queue's write (a crash, an outage) is made good by
``studies.reconcile`` within a reconciler period. A worker stopping hands its slot back.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState as OptunaState
from sqlalchemy.exc import DBAPIError

from studies import checkpoints, notes, optuna_bridge, plots, queue, resume
from studies.db import Database, TrialState
from studies.diagnosis import Diagnosis
from studies.optuna_attrs import write_trial_attrs
from studies.recorder import EpochRecorder, retry_transient
from studies.worker_options import WorkerOptions
from trainer._paths import relative_to_root

if TYPE_CHECKING:
    from trainer import EpochRecord, History, RunConfig, Stop

log = logging.getLogger(__name__)

# Longest error text kept for a failed trial (the message plus the end of the traceback).
_MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class WorkerContext:
    """What running one trial needs of the worker that claimed it: the worker's options
    (data and artifact folders, heartbeat interval and grace, checkpoint cap) and its live
    parts."""

    db: Database
    device: str  # resolved: cpu, cuda or cuda:N (``options.device`` may say auto)
    options: WorkerOptions
    stop: threading.Event  # the worker's stop request: hand the slot back at the next epoch
    touch: Callable[[int | None], None]  # the worker is alive, running this trial (or none)
    reap: Callable[[], None]  # reap dead peers' slots (the worker limits how often)


class TrialRun:
    """One attempt of one claimed slot: a member of the pack ``studies.pack_run`` trains
    (a pack of one when it trains alone). Start (``start``), prepare (``prepare``), train
    elsewhere with ``on_epoch`` as the member's callback, then ``conclude`` with its history
    (or ``training_failed`` with the trainer's error)."""

    def __init__(self, context: WorkerContext, claim: queue.Claim) -> None:
        self.context = context
        self.db = context.db
        self.claim = claim
        self.spec = claim.spec
        self.lost = threading.Event()  # the heartbeat found the slot taken away
        self.recorder = EpochRecorder(
            self.db,
            claim,
            stop=context.stop,
            lost=self.lost,
            outage_grace_s=context.options.stale_after_s,
        )
        self.optuna_trial_id: int | None = None
        # The slot's epoch state: written after every epoch, continued by a next attempt.
        self.state_path = resume.epoch_state_path(context.options.artifacts_dir, claim.trial_id)
        # The best epoch's checkpoint, kept in the artifact store when the trial completes.
        self.checkpoint_path = checkpoints.running_path(
            context.options.artifacts_dir, claim.trial_id
        )
        # Known once started (``start``) and prepared (``prepare``).
        self.study: optuna.Study
        self.trial: optuna.Trial
        self.params: dict[str, Any] = {}
        self.config: RunConfig
        self.resumption = resume.Resumption()

    def fail(self, exc: BaseException) -> None:
        """Record an unexpected error as this trial's failure (best effort). Optuna's trial
        is failed only when the slot was still this attempt's: a slot already finished (its
        result in the queue, Optuna's tell lost) is the reconciler's to close."""
        with contextlib.suppress(DBAPIError, optuna.exceptions.StorageInternalError):
            failed = queue.finish(
                self.db,
                self.claim,
                state=TrialState.FAILED,
                error=error_text(exc, self.context.options.data_dir),
                summary=self.recorder.summary(),
            )
            if failed:
                resume.discard(self.state_path)
            if failed and self.optuna_trial_id is not None:
                optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)

    def start(self, load_study: Callable[[], optuna.Study]) -> bool:
        """Start the Optuna trial (in the study *load_study* gives: a pack shares one) and
        record the attempt; False when the slot cannot run (its failure recorded, or the
        slot taken away meanwhile)."""
        claim = self.claim
        # A transient database error while starting is retried for the slot's grace, as
        # the per-epoch writes are; past it the error propagates and the worker abandons
        # the slot to the reaper (its heartbeat does not beat yet), never failing it.
        grace_s = self.context.options.stale_after_s
        try:
            self.study, self.trial, self.params, optuna_trial_id = retry_transient(
                lambda: self._start_optuna_trial(load_study()), grace_s=grace_s
            )
        except (DBAPIError, optuna.exceptions.StorageInternalError):
            raise
        except Exception as exc:
            # Without an Optuna trial the slot cannot run; record why and move on.
            log.exception("trial %s: could not start its Optuna trial", claim.trial_id)
            started = self.optuna_trial_id
            if started is None:
                started = claim.enqueued_optuna_trial_id
            error = error_text(exc, self.context.options.data_dir)
            queue.finish(self.db, claim, state=TrialState.FAILED, error=error)
            if started is not None:
                optuna_bridge.fail_trial(self.db.url, started)
            return False
        recorded = retry_transient(
            lambda: queue.start_attempt(
                self.db,
                claim,
                params=self.params,
                optuna_trial_id=optuna_trial_id,
                optuna_trial_number=self.trial.number,
            ),
            grace_s=grace_s,
        )
        if not recorded:
            optuna_bridge.fail_trial(self.db.url, optuna_trial_id)
            return False
        log.info(
            "trial %s (study %s #%s) %s", claim.trial_id, claim.study_id, claim.number, self.params
        )
        return True

    def _start_optuna_trial(
        self, study: optuna.Study
    ) -> tuple[optuna.Study, optuna.Trial, dict[str, Any], int]:
        """The slot's Optuna trial, started, with its parameters and storage id; safe to run
        again after a transient error (a sampled slot's abandoned try stays RUNNING until
        the reconciler fails it)."""
        claim = self.claim
        trial, params = optuna_bridge.start_trial(
            study,
            self.spec,
            enqueued_trial_id=claim.enqueued_optuna_trial_id,
            params=claim.params,
        )
        trial_id = optuna_bridge.storage_trial_id(trial)
        self.optuna_trial_id = trial_id  # known from here on, for the failure paths
        write_trial_attrs(
            trial,
            storage_trial_id=trial_id,
            user={
                optuna_bridge.ATTR_SWEEPDOC_TRIAL: claim.trial_id,
                optuna_bridge.ATTR_ATTEMPT: claim.attempt,
            },
        )
        return study, trial, params, trial_id

    def beat(self) -> bool:
        """One heartbeat of the slot; False (and ``lost`` set) once it was taken away."""
        if queue.beat(self.db, self.claim):
            return True
        self.lost.set()
        return False

    def prepare(self) -> bool:
        """Build the run's config and decide where it starts (``studies.resume``); False
        when the member does not train (its failure recorded, or the slot reaped)."""
        try:
            self.config = self.spec.to_run_config(
                self.params,
                data_dir=self.context.options.data_dir,
                device=self.context.device,
                trial_checkpoint=checkpoints.init_from_file(
                    self.db, self.context.options.artifacts_dir, self.spec
                ),
            )
            start = retry_transient(
                lambda: resume.begin(
                    self.db,
                    self.claim,
                    path=self.state_path,
                    config=self.config,
                    device=self.context.device,
                ),
                grace_s=self.context.options.stale_after_s,
            )
            if start is None:
                log.warning("trial %s was reaped before it began training", self.claim.trial_id)
                optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)
                return False
            self.resumption = start
            self.recorder.continue_from(self.trial, start.records)
        except (DBAPIError, optuna.exceptions.StorageInternalError):
            raise  # the database stayed away: the worker abandons the slot to the reaper
        except Exception as exc:
            self.training_failed(exc)
            return False
        return True

    def on_epoch(self, record: EpochRecord, history: History) -> Stop | None:
        """The trainer's per-epoch callback for this member (``studies.recorder``)."""
        return self.recorder.on_epoch(self.trial, record, history)

    def train_alone(self) -> None:
        """Train this member by itself (``trainer.train``, resumable), then conclude."""
        from studies.range_run import is_range_test, run_range_test
        from trainer import train

        if is_range_test(self.spec):  # an LR range test instead of a training run
            run_range_test(self, self.study, self.trial)
            return
        try:
            history = train(
                self.config,
                on_epoch=self.on_epoch,
                epoch_state_path=self.state_path,
                resume_from=self.resumption.state,
                checkpoint_path=self.checkpoint_path,
                best_by=self.spec.objective.value,
            )
        except (DBAPIError, optuna.exceptions.StorageInternalError):
            raise  # the database stayed away: the worker abandons the slot to the reaper
        except Exception as exc:
            self.training_failed(exc)
            return
        self.conclude(history)

    def hand_back(self) -> None:
        """The worker is stopping: give the slot back to the queue (no retry used)."""
        queue.release(self.db, self.claim, reason="worker stopped before the trial finished")
        if self.optuna_trial_id is not None:
            optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)

    def training_failed(self, exc: Exception) -> None:
        """One trial's error (bad dataset file, CUDA OOM, …) fails that trial alone."""
        log.warning("trial %s failed: %s", self.claim.trial_id, exc)
        if queue.finish(
            self.db,
            self.claim,
            state=TrialState.FAILED,
            error=error_text(exc, self.context.options.data_dir),
            summary=self.recorder.summary(),
        ):
            resume.discard(self.state_path)
        # FAIL either way: this attempt's own failure, or a fenced-out attempt's trial.
        optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)

    def conclude(self, history: History) -> None:
        """Store the trained member's outcome: dropped when reaped, handed back when the
        worker stops, else diagnosed and finished."""
        from trainer import RunStatus

        claim, recorder = self.claim, self.recorder
        ending = recorder.ending
        if ending.lost or self.lost.is_set():
            log.warning("trial %s was reaped while running; its result is dropped", claim.trial_id)
            return
        if ending.released:
            self.hand_back()
            return
        recorder.record_unseen(history)

        state = ending.state or TrialState.COMPLETE
        stop_reason = ending.reason or history.stop_reason
        if history.status is RunStatus.DIVERGED:
            state, stop_reason = TrialState.PRUNED, history.stop_reason
        value = recorder.summary().objective_value
        if state is TrialState.COMPLETE and value is None:
            state, stop_reason = TrialState.PRUNED, "no finite objective value"
        diagnosis = ending.live_diagnosis or recorder.diagnose()
        self._finish(state, stop_reason, value, diagnosis)

    def _finish(
        self,
        state: TrialState,
        stop_reason: str | None,
        value: float | None,
        diagnosis: Diagnosis | None,
    ) -> None:
        claim, summary, params = self.claim, self.recorder.summary(), self.params
        label = diagnosis.label.value if diagnosis is not None else None
        confidence = diagnosis.confidence if diagnosis is not None else None
        note = (
            notes.trial_note(diagnosis, params=params, state=state, stop_reason=stop_reason)
            if diagnosis is not None
            else None
        )
        if not self._still_ours():
            return
        assert self.optuna_trial_id is not None  # started
        optuna_bridge.annotate(
            self.trial,
            storage_trial_id=self.optuna_trial_id,
            label=label,
            confidence=confidence,
            note=note,
            # Listed now, rendered when first opened (studies.plots.LazyCurvesStore).
            plot_artifact_id=plots.curves_artifact_id(claim.trial_id, claim.attempt),
            attrs={"state": state.value, "stop_reason": stop_reason or ""},
        )
        # The queue first, fenced by the attempt number: a worker that stalled past its
        # grace was reaped and its slot may be running again, so its result is dropped and
        # its Optuna trial failed (never a second COMPLETE of the point). A tell lost after
        # the queue's write is made good by the reconciler (studies.reconcile).
        finished = queue.finish(
            self.db,
            claim,
            state=state,
            stop_reason=stop_reason,
            label=label,
            confidence=confidence,
            diagnosis=diagnosis.model_dump(mode="python") if diagnosis is not None else None,
            summary=summary,
        )
        if not finished:
            log.warning(
                "trial %s was reaped before it finished; its result is dropped", claim.trial_id
            )
            optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)
            return
        resume.discard(self.state_path)  # the slot is done: nothing will continue it
        optuna_state = OptunaState.COMPLETE if state is TrialState.COMPLETE else OptunaState.PRUNED
        optuna_bridge.tell(self.study, self.trial, optuna_state, value)
        checkpoints.keep_checkpoint(
            self.db,
            self.context.options.artifacts_dir,
            claim.trial_id,
            self.checkpoint_path,
            max_bytes=self.context.options.max_artifact_bytes,
        )
        log.info("trial %s: %s, %s, value %s", claim.trial_id, state, label, value)

    def _still_ours(self) -> bool:
        return not self.lost.is_set() and self.beat()


def error_text(exc: BaseException, data_dir: Path) -> str:
    """A failed trial's error: the exception and the end of its traceback, bounded, with
    paths under this worker's data root written relative to it (a worker on another machine
    has its own layout, which the API, stripping only the server's, could not hide)."""
    text = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc)[-6:])
    full = relative_to_root(f"{text}\n\n{tb}", data_dir) or ""
    return full if len(full) <= _MAX_ERROR_CHARS else full[: _MAX_ERROR_CHARS - 1] + "…"
