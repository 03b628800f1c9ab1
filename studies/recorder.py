"""One trial's per-epoch recording, and what its epochs add up to.

Per epoch (the trainer's ``on_epoch`` callback, ``EpochRecorder.on_epoch``): the epoch's
record is stored (losslessly, with the health statistics) together with the running
summary, the objective is reported to Optuna (dashboard intermediate values, pruning), the
live divergence check runs (a diverged run stops at once), and the study's cancel flag and
the worker's stop request are read. The store and the Optuna report are retried through a
database outage for as long as the slot's heartbeat grace lasts, so a short outage loses
no epoch. Why the run stopped is kept in ``ending`` for the trial's lifecycle
(``studies.trial_run``) to act on.

A pack (``studies.pack_run``) splits that step in two for its members: each member
``add``s its epoch, ``store_epochs`` stores all of them in one transaction (one SQLite
commit per pack-epoch instead of one per member), then each member, in pack order,
``judge``s its own (Optuna report and pruning, live check, cancel, stop): Optuna's public
API has no write that spans trials, so its reports stay one per member.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import optuna
from sqlalchemy.exc import DBAPIError

from studies import optuna_bridge, queue
from studies.db import Database, TrialState
from studies.diagnosis import Curves, Diagnosis, Plan, diagnose_run, live_check
from studies.results import Candidate, RunFacts, TrialSummary, best_trial, summarize
from studies.spec import Objective
from trainer import curves_json

if TYPE_CHECKING:
    from trainer import EpochRecord, History, Stop

log = logging.getLogger(__name__)
_T = TypeVar("_T")

# Longest wait between two retries of a write while the database is away.
_MAX_RETRY_DELAY_S = 2.0


@dataclasses.dataclass
class Ending:
    """Why the run ended, as far as the per-epoch callback knows."""

    reason: str | None = None  # stop reason shown to the user
    state: TrialState | None = None  # PRUNED when stopped early on purpose
    live_diagnosis: Diagnosis | None = None  # the live check's verdict when it stopped
    lost: bool = False  # the slot was taken away (reaped): write nothing more
    released: bool = False  # the worker is shutting down: hand the slot back


class EpochRecorder:
    """The epochs of one attempt of one claimed slot, as stored and reported so far."""

    def __init__(
        self,
        db: Database,
        claim: queue.Claim,
        *,
        stop: threading.Event,
        lost: threading.Event,
        outage_grace_s: float,
    ) -> None:
        self.db = db
        self.claim = claim
        self.maximize = claim.spec.objective is Objective.VAL_ACC
        self.stop = stop  # the worker's stop request: hand the slot back at this epoch
        self.lost = lost  # set by the heartbeat thread when the slot was taken away
        # Until the heartbeat grace runs out the slot is still ours: retry writes that long.
        self.outage_grace_s = outage_grace_s
        self.records: list[dict[str, Any]] = []
        self.facts = RunFacts()
        self.ending = Ending()
        # The study's COMPLETE slots as counted with this attempt's last stored epoch: the
        # pruner's cue to read Optuna's finished trials again (``studies.pack_run``).
        self.complete_in_study: int | None = None

    # -- per epoch ---------------------------------------------------------------------

    def on_epoch(self, trial: optuna.Trial, record: EpochRecord, history: History) -> Stop | None:
        """Store, report and check one finished epoch; a ``Stop`` ends the run after it."""
        write = self.add(record, history)
        return self.judge(trial, store_epochs([self], [write])[0])

    def add(self, record: EpochRecord, history: History) -> queue.EpochWrite:
        """Take one finished epoch into the curves and summary; what to store for it (a
        pack stores every member's epoch in one transaction: ``store_epochs``)."""
        self._learn_facts(history)
        plain = _plain(dataclasses.asdict(record))
        self.records.append(plain)
        return queue.EpochWrite(self.claim, plain, self.summary())

    def judge(self, trial: optuna.Trial, ack: queue.EpochAck) -> Stop | None:
        """The epoch ``add`` took, once stored (*ack*): report it to Optuna (pruning), run
        the live divergence check, read the cancel flag and the stop request; a ``Stop``
        ends the run after it."""
        from trainer import RunStatus, Stop

        if not ack.owned or self.lost.is_set():
            self.ending.lost = True
            # No files for this epoch: the trial's checkpoint and epoch-state paths are the
            # new attempt's now.
            return Stop(
                RunStatus.STOPPED,
                "the slot was taken away (heartbeat expired)",
                discard_epoch=True,
            )
        self.complete_in_study = ack.complete_in_study
        plain = self.records[-1]
        epoch = int(plain["epoch"])
        objective = plain[self.claim.spec.objective.value]  # "val_acc" or "val_loss"
        should_prune = self._retrying(lambda: optuna_bridge.report(trial, objective, epoch))
        live = live_check(Curves.model_validate(self.curves()))
        if live is not None:
            self.ending = Ending(
                reason=f"stopped by the live divergence check at epoch {epoch}: {live.summary}",
                state=TrialState.PRUNED,
                live_diagnosis=live,
            )
            return Stop(RunStatus.DIVERGED, self.ending.reason or "diverged")
        if ack.cancel_requested:
            self.ending = Ending(reason="study cancelled", state=TrialState.PRUNED)
            return Stop(RunStatus.STOPPED, "study cancelled")
        if should_prune:
            reason = f"pruned by the {self.claim.spec.pruner} pruner at epoch {epoch}"
            self.ending = Ending(reason=reason, state=TrialState.PRUNED)
            return Stop(RunStatus.STOPPED, reason)
        if self.stop.is_set():
            self.ending = Ending(released=True)
            return Stop(RunStatus.STOPPED, "worker shutting down")
        return None

    def reported(self) -> dict[int, float]:
        """The objective's value at each epoch so far (Optuna was told the finite ones):
        what a pack's later members are judged against (``studies.pack_pruning``)."""
        objective = self.claim.spec.objective.value  # "val_acc" or "val_loss"
        return {int(plain["epoch"]): float(plain[objective]) for plain in self.records}

    def continue_from(self, trial: optuna.Trial, records: list[dict[str, Any]]) -> None:
        """Adopt the epochs an earlier attempt stored, which this attempt resumes after
        (``studies.resume``): they count in the curves and summary, and are reported to this
        attempt's Optuna trial so its intermediate values hold every epoch. The pruner's
        verdict on them is ignored: the earlier attempt acted on it."""
        self.records = [dict(r) for r in records]
        objective = self.claim.spec.objective.value  # "val_acc" or "val_loss"
        for plain in self.records:
            self._retrying(
                functools.partial(
                    optuna_bridge.report, trial, plain[objective], int(plain["epoch"])
                )
            )

    def _learn_facts(self, history: History) -> None:
        """The dataset and device facts, from this attempt's first sight of the history."""
        if self.facts.num_classes is None:
            self.facts = RunFacts(
                num_classes=history.data.num_classes,
                train_size=history.data.train_size,
                val_size=history.data.val_size,
                input_shape=list(history.data.input_shape),
                device=history.device,
            )

    def record_unseen(self, history: History) -> None:
        """Store the epochs the callback did not see (none today; cheap insurance)."""
        self._learn_facts(history)  # a run resumed after its last epoch trains none
        for record in history.record_dicts()[len(self.records) :]:
            plain = _plain(record)
            self.records.append(plain)
            queue.record_epoch(self.db, self.claim, plain, summary=self.summary())

    def _retrying(self, action: Callable[[], _T]) -> _T:
        """Run *action*, retrying transient database errors for up to the slot's grace (a
        restarting database should not cost an epoch's record)."""
        return retry_transient(action, grace_s=self.outage_grace_s)

    # -- results -----------------------------------------------------------------------

    def curves(self) -> dict[str, Any]:
        """The curves JSON of the epochs so far (nulls for non-finite values)."""
        return curves_json(self.records, self.facts.num_classes)

    def summary(self) -> TrialSummary:
        """The summary numbers of the epochs so far (NaN kept: the API serves it as null)."""
        return summarize(self.records, facts=self.facts, maximize=self.maximize)

    def diagnose(self) -> Diagnosis | None:
        """The run's diagnosis in the context of its study; None before any epoch."""
        if not self.records:
            return None
        # The plan (the study's epochs and LR schedule) tells a run stopped early, or one
        # still before a scheduled LR drop, from a finished one.
        plan: Plan | None = Plan.of_recipe(self.claim.spec.train)
        if plan is not None and plan.epochs < len(self.records):
            # More epochs than the study plans (a run replayed or resumed under another
            # spec): no plan rather than a diagnosis refused for it.
            plan = None
        return diagnose_run(
            Curves.model_validate(self.curves() | {"plan": plan}),
            study_best_val_acc=self._study_best_val_acc(),
        )

    def _study_best_val_acc(self) -> float | None:
        """The best validation accuracy of the study's best trial, this run counted as if it
        were complete: the bar the diagnoser holds this run to (underfitting)."""
        mine = queue.CompleteTrial(number=self.claim.number, summary=self.summary())
        best = best_trial(
            [*queue.complete_summaries(self.db, self.claim.study_id), mine],
            maximize=self.maximize,
            candidate=lambda t: Candidate(t.number, True, t.summary.objective_value),
        )
        return best.summary.best_val_acc if best is not None else None


def store_epochs(
    recorders: Sequence[EpochRecorder], writes: Sequence[queue.EpochWrite]
) -> list[queue.EpochAck]:
    """Store one finished epoch of each of *recorders* (``EpochRecorder.add``'s *writes*, a
    pack's members after one epoch) in ONE transaction, retried through a database outage
    for as long as their slots' heartbeat grace lasts (the transaction is all or nothing,
    so a retry never stores an epoch twice); one ack per write, for ``judge``."""
    db = recorders[0].db
    grace_s = min(recorder.outage_grace_s for recorder in recorders)
    return retry_transient(lambda: queue.record_epochs(db, writes), grace_s=grace_s)


def retry_transient(action: Callable[[], _T], *, grace_s: float) -> _T:
    """Run *action*, retrying database errors (0.2 s apart, doubling up to 2 s) for up to
    *grace_s*, then raising the last one. Optuna wraps the driver's errors in
    ``StorageInternalError``; those are retried too. *action* must be safe to run again
    after an error (its writes conditional or idempotent)."""
    deadline = time.monotonic() + grace_s
    delay = 0.2
    while True:
        try:
            return action()
        except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            name = exc.__class__.__name__
            log.warning("database error (%s); retrying in %.1f s", name, delay)
            time.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY_S)


def _plain(record: dict[str, Any]) -> dict[str, Any]:
    """An epoch record with plain Python numbers (floats may be NaN/inf; kept as is)."""
    return {k: float(v) if isinstance(v, float) else v for k, v in record.items()}
