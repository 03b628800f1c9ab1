"""The worker loop: claim a trial, train it, report every epoch, diagnose, record, repeat.

Per epoch (the trainer's ``on_epoch`` callback): the epoch's record is stored (losslessly,
with the health statistics), the objective is reported to Optuna (dashboard intermediate
values, pruning), the live divergence check runs (a diverged run stops at once), the
study's cancel flag is read, and the heartbeat is beaten. A background thread also beats
the heartbeat every ``heartbeat_interval_s`` so an epoch longer than the reaper's grace does
not look like a dead worker.

At the end: the diagnosis is stored and written onto the Optuna trial (user attributes
``label``/``confidence``, a dashboard note, the curves plot as an artifact), then the
Optuna trial is told (COMPLETE; PRUNED for diverged, pruned or cancelled runs; FAIL on an
error, whose text is stored) and finally the slot is finished in sweepdoc's queue. Optuna
is written first so that whenever the API reports a trial finished, Optuna agrees.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from optuna.trial import TrialState as OptunaState
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from studies import notes, optuna_bridge, plots, queue
from studies.db import Database, TrialRow, TrialState
from studies.diagnosis import Curves, Diagnosis, diagnose_run, live_check
from studies.spec import Objective
from trainer import curves_json, finite_or_none

if TYPE_CHECKING:  # the trainer (torch) is imported when the first trial runs
    from trainer import EpochRecord, History, Stop

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Longest wait between two retries of a write while the database is away.
_MAX_RETRY_DELAY_S = 2.0
# Longest error text kept for a failed trial (the message plus the end of the traceback).
_MAX_ERROR_CHARS = 4000


class WorkerOptions(BaseModel):
    """How one worker process runs; the service builds it from its settings and flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda|cuda:\d+)$")
    data_dir: Path
    artifacts_dir: Path
    name: str | None = Field(None, description="Default: host:pid.")
    poll_interval_s: float = Field(1.0, gt=0.0, description="Sleep between empty claims.")
    heartbeat_interval_s: float = Field(5.0, gt=0.0)
    stale_after_s: float = Field(30.0, gt=0.0, description="Reaper's heartbeat grace.")
    max_trials: int | None = Field(None, ge=1, description="Exit after this many trials.")
    exit_when_idle: bool = Field(
        False, description="Exit once no slot is waiting or running anywhere."
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch.set_num_threads for CPU training; None = torch's choice."
    )


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def run_worker(
    options: WorkerOptions,
    *,
    stop: threading.Event | None = None,
    drain: threading.Event | None = None,
) -> int:
    """Run trials until *stop* is set (or SIGTERM/SIGINT), ``max_trials`` or idle; return
    the number of trials run. A trial interrupted by a stop request is handed back to the
    queue at its next epoch, without using up one of its retries. Once *drain* is set the
    worker finishes the trial it is running (results stored as usual) and exits without
    claiming another: what a local worker does when its server was killed."""
    stop = stop or threading.Event()
    if options.torch_threads is not None:
        import torch

        torch.set_num_threads(options.torch_threads)
    worker = _Worker(options, stop, drain or threading.Event())
    with _stop_on_signals(stop):
        try:
            _warm_up()  # a stop asked for meanwhile is seen by the loop's first check
            return worker.loop()
        finally:
            with contextlib.suppress(DBAPIError):
                worker._touch(None)  # no longer working on anything
            worker.db.dispose()


def _warm_up() -> None:
    """Pay the trainer's one-off import cost (torch, the data sources, torch's optimizer
    machinery: 5–10 s on a 2-core CPU) before polling, not inside the first claimed trial,
    whose heartbeat, timings and queue latency it would otherwise distort."""
    try:
        from trainer import warm_up

        warm_up()
    except Exception:
        # A broken torch install fails each trial with its real error, stored for the user;
        # the worker itself stays up and keeps reporting to /readyz.
        log.exception("warming up the trainer failed; trials will report the error")


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: finishing at the next epoch", signum)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Worker:
    def __init__(
        self, options: WorkerOptions, stop: threading.Event, drain: threading.Event
    ) -> None:
        self.options = options
        self.stop = stop
        self.drain = drain
        self.db = Database(options.database_url)
        self.db.create_schema()
        self.name = options.name or f"{socket.gethostname()}:{os.getpid()}"
        self.device = _resolve_device(options.device)
        self._last_reap = 0.0

    def _touch(self, current_trial_id: int | None) -> None:
        queue.touch_worker(
            self.db,
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            device=self.device,
            current_trial_id=current_trial_id,
        )

    def _reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < self.options.heartbeat_interval_s:
            return
        self._last_reap = now
        try:
            queue.reap_stale(self.db, stale_after_s=self.options.stale_after_s)
        except DBAPIError:
            raise  # the callers wait for the database and retry
        except Exception:
            # Reaping is a service to other workers' trials; a failure to close one
            # (say, an Optuna write) must not stop this worker or its heartbeat.
            log.exception("reaping stale trials failed; retrying at the next round")

    def _idle(self) -> bool:
        with self.db.session() as session:
            open_slots = session.scalar(
                select(func.count(TrialRow.id)).where(
                    TrialRow.state.in_((TrialState.WAITING, TrialState.RUNNING))
                )
            )
        return not open_slots

    def loop(self) -> int:
        ran = 0
        log.info("worker %s on %s polling %s", self.name, self.device, self.db.engine.url)
        while not self.stop.is_set():
            if self.options.max_trials is not None and ran >= self.options.max_trials:
                break
            if self.drain.is_set():
                log.info("worker %s draining: no new trial after %d run", self.name, ran)
                break
            try:
                self._touch(None)
                self._reap()
                claim = queue.claim_next(self.db, worker=self.name, device=self.device)
                if claim is None:
                    if self.options.exit_when_idle and self._idle():
                        break
                    self.stop.wait(self.options.poll_interval_s)
                    continue
            except DBAPIError as exc:
                # The database may be restarting: wait and retry rather than exit.
                log.warning("database unavailable (%s); retrying", exc.__class__.__name__)
                self.stop.wait(self.options.poll_interval_s)
                continue
            run = _TrialRun(self, claim)
            try:
                run.run()
            except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:
                # The database went away mid-trial and stayed away: the slot's heartbeat
                # stops, so the reaper re-queues it; this worker carries on polling.
                log.warning("trial %s abandoned: database error %s", claim.trial_id, exc)
            except Exception as exc:
                # A bug after training (diagnosis, plot, an Optuna write) fails this trial,
                # not the worker.
                log.exception("trial %s failed after training", claim.trial_id)
                run.fail(exc)
            ran += 1
        return ran


@dataclasses.dataclass
class _Outcome:
    """Why the run ended, as far as the callback knows."""

    reason: str | None = None  # stop reason shown to the user
    state: TrialState | None = None  # PRUNED when stopped early on purpose
    live_diagnosis: Diagnosis | None = None  # the live check's verdict when it stopped
    lost: bool = False  # the slot was taken away (reaped): write nothing more
    released: bool = False  # the worker is shutting down: hand the slot back


class _TrialRun:
    def __init__(self, worker: _Worker, claim: queue.Claim) -> None:
        self.worker = worker
        self.db = worker.db
        self.claim = claim
        self.spec = claim.spec
        self.records: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}
        self.outcome = _Outcome()
        self.lost = threading.Event()
        self.optuna_trial_id: int | None = None

    def fail(self, exc: BaseException) -> None:
        """Record an unexpected error as this trial's failure (best effort)."""
        with contextlib.suppress(DBAPIError):
            if self.optuna_trial_id is not None:
                optuna_bridge.fail_trial(self.db.url, self.optuna_trial_id)
            queue.finish(
                self.db,
                self.claim,
                state=TrialState.FAILED,
                error=_error_text(exc),
                summary=self._summary(),
            )

    # -- lifecycle -------------------------------------------------------------------

    def run(self) -> None:
        claim = self.claim
        options = self.worker.options
        try:
            study = optuna_bridge.load_study(self.db.url, claim.optuna_study_name, self.spec)
            trial, params = optuna_bridge.start_trial(
                study,
                self.spec,
                enqueued_trial_id=claim.enqueued_optuna_trial_id,
                params=claim.params,
            )
            trial.set_user_attr(optuna_bridge.ATTR_SWEEPDOC_TRIAL, claim.trial_id)
            trial.set_user_attr(optuna_bridge.ATTR_ATTEMPT, claim.attempt)
        except Exception as exc:
            # Without an Optuna trial the slot cannot run; record why and move on.
            log.exception("trial %s: could not start its Optuna trial", claim.trial_id)
            if claim.enqueued_optuna_trial_id is not None:
                optuna_bridge.fail_trial(self.db.url, claim.enqueued_optuna_trial_id)
            queue.finish(self.db, claim, state=TrialState.FAILED, error=_error_text(exc))
            return
        self.optuna_trial_id = trial._trial_id
        if not queue.start_attempt(
            self.db,
            claim,
            params=params,
            optuna_trial_id=trial._trial_id,
            optuna_trial_number=trial.number,
        ):
            optuna_bridge.fail_trial(self.db.url, trial._trial_id)
            return
        self.worker._touch(claim.trial_id)
        log.info("trial %s (study %s #%s) %s", claim.trial_id, claim.study_id, claim.number, params)
        beating = threading.Event()
        heart = threading.Thread(target=self._heartbeat, args=(beating,), daemon=True)
        heart.start()
        try:
            self._train_and_record(study, trial, params, options)
        finally:
            beating.set()
            heart.join()

    def _heartbeat(self, done: threading.Event) -> None:
        while not done.wait(self.worker.options.heartbeat_interval_s):
            try:
                if not queue.beat(self.db, self.claim):
                    self.lost.set()
                    return
                # Reap from here too, so a dead peer's trial is re-queued even while every
                # live worker is busy with a long trial.
                self.worker._reap()
            except DBAPIError as exc:
                log.warning("heartbeat failed (%s); retrying", exc.__class__.__name__)

    def _train_and_record(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        params: dict[str, Any],
        options: WorkerOptions,
    ) -> None:
        from trainer import RunStatus, train

        claim = self.claim
        try:
            config = self.spec.to_run_config(
                params, data_dir=options.data_dir, device=self.worker.device
            )
            history = train(config, on_epoch=lambda r, h: self._on_epoch(trial, r, h))
        except Exception as exc:
            # One trial's error (bad dataset file, CUDA OOM, …) fails that trial alone.
            log.warning("trial %s failed: %s", claim.trial_id, exc)
            if self._still_ours():
                optuna_bridge.tell(study, trial, OptunaState.FAIL, None)
                queue.finish(
                    self.db,
                    claim,
                    state=TrialState.FAILED,
                    error=_error_text(exc),
                    summary=self._summary(),
                )
            return
        if self.outcome.lost or self.lost.is_set():
            log.warning("trial %s was reaped while running; its result is dropped", claim.trial_id)
            return
        if self.outcome.released:
            optuna_bridge.fail_trial(self.db.url, trial._trial_id)
            queue.release(self.db, claim, reason="worker stopped before the trial finished")
            return
        # Epochs the callback did not see (none today; cheap insurance).
        for record in history.record_dicts()[len(self.records) :]:
            self.records.append(record)
            queue.record_epoch(self.db, claim, _plain(record), summary=self._summary())

        state = self.outcome.state or TrialState.COMPLETE
        stop_reason = self.outcome.reason or history.stop_reason
        if history.status is RunStatus.DIVERGED:
            state, stop_reason = TrialState.PRUNED, history.stop_reason
        value = self._objective_value()
        if state is TrialState.COMPLETE and value is None:
            state, stop_reason = TrialState.PRUNED, "no finite objective value"
        diagnosis = self.outcome.live_diagnosis or self._diagnose()
        self._finish(study, trial, params, state, stop_reason, value, diagnosis)

    def _finish(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        params: dict[str, Any],
        state: TrialState,
        stop_reason: str | None,
        value: float | None,
        diagnosis: Diagnosis | None,
    ) -> None:
        claim = self.claim
        label = diagnosis.label.value if diagnosis is not None else None
        confidence = diagnosis.confidence if diagnosis is not None else None
        plot = self._plot(params, label)
        note = (
            notes.trial_note(diagnosis, params=params, state=state, stop_reason=stop_reason)
            if diagnosis is not None
            else None
        )
        if not self._still_ours():
            return
        optuna_bridge.annotate(
            trial,
            label=label,
            confidence=confidence,
            note=note,
            plot=plot,
            artifacts_dir=self.worker.options.artifacts_dir,
            attrs={"state": state.value, "stop_reason": stop_reason or ""},
        )
        optuna_state = OptunaState.COMPLETE if state is TrialState.COMPLETE else OptunaState.PRUNED
        optuna_bridge.tell(study, trial, optuna_state, value)
        queue.finish(
            self.db,
            claim,
            state=state,
            stop_reason=stop_reason,
            label=label,
            confidence=confidence,
            diagnosis=diagnosis.model_dump(mode="python") if diagnosis is not None else None,
            summary=self._summary(),
        )
        log.info("trial %s: %s, %s, value %s", claim.trial_id, state, label, value)

    def _still_ours(self) -> bool:
        return not self.lost.is_set() and queue.beat(self.db, self.claim)

    # -- per epoch ---------------------------------------------------------------------

    def _on_epoch(self, trial: optuna.Trial, record: EpochRecord, history: History) -> Stop | None:
        from trainer import RunStatus, Stop

        if not self.facts:
            self.facts = {
                "num_classes": history.num_classes,
                "train_size": history.train_size,
                "val_size": history.val_size,
                "input_shape": list(history.input_shape),
                "device": history.device,
            }
        plain = _plain(dataclasses.asdict(record))
        self.records.append(plain)
        # Until the heartbeat grace runs out the slot is still ours: keep retrying the write
        # through a database outage rather than lose the epoch (or the trial).
        outage_s = self.worker.options.stale_after_s
        ack = _retrying(
            lambda: queue.record_epoch(self.db, self.claim, plain, summary=self._summary()),
            for_s=outage_s,
        )
        if not ack.owned or self.lost.is_set():
            self.outcome.lost = True
            return Stop(RunStatus.STOPPED, "the slot was taken away (heartbeat expired)")
        epoch = int(plain["epoch"])
        objective = plain["val_acc" if self.spec.objective is Objective.VAL_ACC else "val_loss"]
        should_prune = _retrying(
            lambda: optuna_bridge.report(trial, objective, epoch), for_s=outage_s
        )
        live = live_check(Curves.model_validate(self._curves()))
        if live is not None:
            self.outcome = _Outcome(
                reason=f"stopped by the live divergence check at epoch {epoch}: {live.summary}",
                state=TrialState.PRUNED,
                live_diagnosis=live,
            )
            return Stop(RunStatus.DIVERGED, self.outcome.reason or "diverged")
        if ack.cancel_requested:
            self.outcome = _Outcome(reason="study cancelled", state=TrialState.PRUNED)
            return Stop(RunStatus.STOPPED, "study cancelled")
        if should_prune:
            reason = f"pruned by the {self.spec.pruner} pruner at epoch {epoch}"
            self.outcome = _Outcome(reason=reason, state=TrialState.PRUNED)
            return Stop(RunStatus.STOPPED, reason)
        if self.worker.stop.is_set():
            self.outcome = _Outcome(released=True)
            return Stop(RunStatus.STOPPED, "worker shutting down")
        return None

    # -- results -----------------------------------------------------------------------

    def _curves(self) -> dict[str, Any]:
        return curves_json(self.records, self.facts.get("num_classes"))

    def _objective_value(self) -> float | None:
        if self.spec.objective is Objective.VAL_ACC:
            values = [
                v for v in (finite_or_none(r["val_acc"]) for r in self.records) if v is not None
            ]
            return max(values) if values else None
        values = [v for v in (finite_or_none(r["val_loss"]) for r in self.records) if v is not None]
        return min(values) if values else None

    def _summary(self) -> dict[str, Any]:
        """Numbers shown in lists (NaN kept: the store serves it as null)."""
        summary: dict[str, Any] = dict(self.facts)
        if not self.records:
            return summary
        last = self.records[-1]
        accs = [(finite_or_none(r["val_acc"]), r["epoch"]) for r in self.records]
        finite_accs = [(a, e) for a, e in accs if a is not None]
        losses = [finite_or_none(r["val_loss"]) for r in self.records]
        finite_losses = [v for v in losses if v is not None]
        best = max(finite_accs, key=lambda ae: ae[0]) if finite_accs else None
        summary.update(
            final_val_acc=last["val_acc"],
            final_val_loss=last["val_loss"],
            final_train_acc=last["train_acc"],
            final_train_loss=last["train_loss"],
            best_val_acc=best[0] if best else None,
            best_epoch=best[1] if best else None,
            best_val_loss=min(finite_losses) if finite_losses else None,
            objective_value=self._objective_value(),
        )
        return summary

    def _diagnose(self) -> Diagnosis | None:
        if not self.records:
            return None
        return diagnose_run(
            Curves.model_validate(self._curves()),
            study_best_val_acc=self._study_best_val_acc(),
        )

    def _study_best_val_acc(self) -> float | None:
        with self.db.session() as session:
            summaries = session.scalars(
                select(TrialRow.summary).where(
                    TrialRow.study_id == self.claim.study_id,
                    TrialRow.state == TrialState.COMPLETE,
                    TrialRow.id != self.claim.trial_id,
                )
            ).all()
        values = [finite_or_none((s or {}).get("best_val_acc")) for s in summaries]
        finite = [v for v in values if v is not None]
        own = self._objective_value() if self.spec.objective is Objective.VAL_ACC else None
        if own is not None:
            finite.append(own)
        return max(finite) if finite else None

    def _plot(self, params: dict[str, Any], label: str | None) -> Path:
        """The curves PNG; the file name is built from ids only, never from user input."""
        folder = self.worker.options.artifacts_dir / "plots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"trial-{self.claim.trial_id}-attempt-{self.claim.attempt}.png"
        summary = self._summary()
        title = f"{self.spec.display_name} #{self.claim.number} lr={params['lr']:g}"
        path.write_bytes(
            plots.trial_curves_png(
                self._curves(), title=title, label=label, best_epoch=summary.get("best_epoch")
            )
        )
        return path


def _retrying(action: Callable[[], _T], *, for_s: float) -> _T:
    """Run *action*, retrying database errors for up to *for_s* seconds (a restarting
    database should not cost an epoch's record). Optuna wraps the driver's errors in
    ``StorageInternalError``; those are retried too."""
    deadline = time.monotonic() + for_s
    delay = 0.2
    while True:
        try:
            return action()
        except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database error (%s); retrying in %.1f s", exc.__class__.__name__, delay)
            time.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY_S)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record with plain Python numbers (floats may be NaN/inf; kept as is)."""
    return {k: float(v) if isinstance(v, float) else v for k, v in record.items()}


def _error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc)[-6:])
    full = f"{text}\n\n{tb}"
    return full if len(full) <= _MAX_ERROR_CHARS else full[: _MAX_ERROR_CHARS - 1] + "…"


__all__ = ["WorkerOptions", "run_worker"]
