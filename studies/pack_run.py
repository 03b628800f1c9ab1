"""The slots one worker claimed together, trained: alone, or K of them as one packed model.

A worker claims one slot, or a pack of slots of one study (``queue.claim_more``, sized by
``studies.packing``). Every slot is a member with a life of its own (``TrialRun``): its
Optuna trial and attempt, its epoch rows, Optuna reports and pruning, the live divergence
stop, cancel, diagnosis and result. Here they share what can be shared: one heartbeat
thread beats every member's slot (and reaps dead peers meanwhile), one transaction per
epoch stores every member's epoch row (``studies.recorder.store_epochs``), and members whose
configs differ only in optimizer settings (``trainer.can_pack``, checked once their
parameters are known) train as one fused model (``trainer.train_packed``), the same data
batches for all. A member the callback stops (diverged, pruned, cancelled, the slot taken
away) is frozen and leaves the pack while the others go on; its result is stored as it
leaves (its Optuna trial PRUNED, its slot finished and no longer counted against
``max_parallel``), the others' when the pack ends. A member that cannot join (its config
differs, or it resumes an earlier attempt's epochs) trains alone after the pack, as every
slot did before packing.

Pruning: each member is judged at each epoch as if the members before it in the pack had
run first (``studies.pack_pruning``); a pruned member leaves the pack, which the trainer
rebuilds without it, so the others no longer pay for its compute. Members that train alone
are judged through the same wrapper (no earlier members), which reads the study's
finished trials only when the queue finished one more COMPLETE.

Each packed member writes its own best checkpoint and epoch state, in the unpacked formats:
a pack killed mid-run is reaped slot by slot, and each slot's next attempt resumes from its
state (``studies.resume``), alone, since a pack starts all its members at epoch 0.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import optuna
from sqlalchemy.exc import DBAPIError

from studies import optuna_bridge, pack_pruning, queue, resume
from studies.recorder import retry_transient, store_epochs
from studies.trial_run import TrialRun, WorkerContext

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from trainer import History, MemberEpoch, Stop

log = logging.getLogger(__name__)

# The Optuna user attribute listing the sweepdoc trial ids a packed trial trained with.
ATTR_PACKED_WITH = "packed_with"


class PackRun:
    """One worker's claimed slots (one or more, one study), from start to stored result."""

    def __init__(self, context: WorkerContext, claims: Sequence[queue.Claim]) -> None:
        self.context = context
        self.members = [TrialRun(context, claim) for claim in claims]
        self._study: optuna.Study | None = None
        self._ledger: _PackLedger | None = None  # the pack training now, if any

    def study(self) -> optuna.Study:
        """The slots' Optuna study (one study per pack: the claims share it), loaded once:
        every member's trial is started, reported and told through this one object."""
        if self._study is None:
            claim = self.members[0].claim
            self._study = optuna_bridge.load_study(
                self.context.db.url, claim.optuna_study_name, claim.spec
            )
        return self._study

    def fail(self, exc: BaseException) -> None:
        """An unexpected error after training fails the members not finished yet (the
        queue's fence leaves finished ones as they are)."""
        for member in self.members:
            member.fail(exc)

    def run(self) -> None:
        """Start every member, train them with the heartbeat beating, store each result."""
        started = [member for member in self.members if member.start(self.study)]
        if not started:
            return
        self.context.touch(started[0].claim.trial_id)
        with _beating(self.context, started), self._judging():
            ready = [member for member in started if member.prepare()]
            alone = self._train_pack(ready)
            for member in alone:
                if self.context.stop.is_set():
                    member.hand_back()  # stopping: not one more epoch for a member waiting
                else:
                    member.train_alone()
        # Epoch states of slots that ended without an attempt finishing them (cancelled
        # while waiting, out of retries): this worker's housekeeping, best effort.
        with contextlib.suppress(DBAPIError, OSError):
            resume.sweep(self.context.db, self.context.options.artifacts_dir)

    def _train_pack(self, ready: list[TrialRun]) -> list[TrialRun]:
        """Train the members that can share one packed model; the ones left to train alone."""
        from trainer import can_pack

        fresh = [member for member in ready if member.resumption.state is None]
        if len(fresh) < 2:
            return ready
        why_not = can_pack([member.config for member in fresh])
        if why_not is not None:
            log.info("trials %s train alone: %s", [m.claim.trial_id for m in fresh], why_not)
            return ready
        self._ledger = _PackLedger(fresh)
        try:
            _train_packed(fresh, self._ledger)
        finally:
            self._ledger = None  # members that train alone after the pack: none earlier
        return [member for member in ready if member not in fresh]

    @contextlib.contextmanager
    def _judging(self) -> Iterator[None]:
        """While the slots train, the study's pruner judges each pack member also against
        the members before it, and reads the study's finished trials only when the queue
        finished one more COMPLETE (``studies.pack_pruning``; trials alone too)."""
        study = self.study()
        own_pruner = study.pruner
        study.pruner = pack_pruning.pack_aware(
            own_pruner, self._earlier, complete_count=self._complete_count
        )
        try:
            yield
        finally:
            study.pruner = own_pruner

    def _complete_count(self) -> int:
        """The study's COMPLETE slots, as counted with the latest epoch stored: each
        member's epoch write counts them in its own transaction (``queue.record_epochs``),
        and a member is judged right after its write. The largest count the members saw is
        the latest (a study's COMPLETE slots only grow); a read of its own before any."""
        seen = [
            m.recorder.complete_in_study
            for m in self.members
            if m.recorder.complete_in_study is not None
        ]
        if seen:
            return max(seen)
        return queue.count_complete(self.context.db, self.members[0].claim.study_id)

    def _earlier(self, number: int) -> list[FrozenTrial]:
        """The pack's members before the one with Optuna trial *number*; none alone."""
        return self._ledger.earlier(number) if self._ledger is not None else []


def _train_packed(members: list[TrialRun], ledger: _PackLedger) -> None:
    from trainer import train_packed

    ids = [member.claim.trial_id for member in members]
    log.info("trials %s train as one packed model", ids)
    for member in members:
        others = [i for i in ids if i != member.claim.trial_id]
        _mark_packed(member, others)
    try:
        histories = train_packed(
            [member.config for member in members],
            on_pack_epoch=ledger.on_pack_epoch,
            on_leave=ledger.on_leave,
            # Each member's best epoch, by the study's objective (studies.checkpoints).
            checkpoint_paths=[member.checkpoint_path for member in members],
            # Each member's own epoch state: a reaped member's next attempt resumes alone.
            epoch_state_paths=[member.state_path for member in members],
            best_by=members[0].spec.objective.value,
        )
    except (DBAPIError, optuna.exceptions.StorageInternalError):
        raise  # the database stayed away: the worker abandons the slots to the reaper
    except Exception as exc:
        # An error of the fused model (CUDA OOM, a bad batch) is every member's still in it.
        for index, member in enumerate(members):
            if index not in ledger.concluded:
                member.training_failed(exc)
        return
    for index, (member, history) in enumerate(zip(members, histories, strict=True)):
        if index not in ledger.concluded:
            member.conclude(history)


class _PackLedger:
    """Which members of a pack are still training: the pack's per-epoch and leaving
    callbacks, and the earlier members each member is judged against
    (``studies.pack_pruning``)."""

    def __init__(self, members: list[TrialRun]) -> None:
        self.members = members
        self.training = [True] * len(members)
        self.concluded: set[int] = set()  # members whose result is stored
        self.positions = {member.trial.number: i for i, member in enumerate(members)}

    def on_pack_epoch(self, epochs: Sequence[MemberEpoch]) -> list[Stop | None]:
        """The pack's epoch end: every member's epoch row in one transaction, then each
        member, in pack order, judged on its own (``studies.recorder``)."""
        from trainer import RunStatus

        members = [self.members[e.index] for e in epochs]
        writes = [m.recorder.add(e.record, e.history) for m, e in zip(members, epochs, strict=True)]
        acks = store_epochs([m.recorder for m in members], writes)
        stops: list[Stop | None] = []
        for member, epoch, ack in zip(members, epochs, acks, strict=True):
            # In order: a member stopped here is no longer an earlier member of the next.
            stop = member.recorder.judge(member.trial, ack)
            # Pruned, diverged, cancelled, handed back or lost: no longer a trial to be
            # judged against (run alone, it would not have ended COMPLETE).
            if stop is not None or epoch.history.status is not RunStatus.RUNNING:
                self.training[epoch.index] = False
            stops.append(stop)
        return stops

    def on_leave(self, index: int, history: History) -> None:
        """Member *index* left the pack early: store its result now."""
        self.training[index] = False
        self.concluded.add(index)  # first: a failure while storing must not store it twice
        member = self.members[index]
        try:
            member.conclude(history)
        except (DBAPIError, optuna.exceptions.StorageInternalError):
            raise  # the database stayed away: the worker abandons the slots to the reaper
        except Exception as exc:
            # A bug storing this member's result (its diagnosis, an Optuna write) fails it
            # alone; the pack trains on.
            log.exception("trial %s failed after training", member.claim.trial_id)
            member.fail(exc)

    def earlier(self, number: int) -> list[FrozenTrial]:
        """The members before the one with Optuna trial *number* still training, as the
        pruner's reference trials (their values up to this epoch)."""
        position = self.positions.get(number, 0)
        references = (
            pack_pruning.reference_trial(member.recorder.reported())
            for member, training in zip(
                self.members[:position], self.training[:position], strict=True
            )
            if training
        )
        return [trial for trial in references if trial is not None]


def _mark_packed(member: TrialRun, others: list[int]) -> None:
    """Show the member's pack in the API (the slot's ``packed_with``) and the dashboard (a
    user attribute of its Optuna trial)."""
    grace_s = member.context.options.stale_after_s
    retry_transient(
        lambda: queue.mark_packed(member.db, member.claim, packed_with=others), grace_s=grace_s
    )
    retry_transient(lambda: member.trial.set_user_attr(ATTR_PACKED_WITH, others), grace_s=grace_s)


@contextlib.contextmanager
def _beating(context: WorkerContext, members: list[TrialRun]) -> Iterator[None]:
    """Beat every member's heartbeat from a background thread while the block runs, so long
    epochs do not look like a dead worker; reap dead peers' slots meanwhile too."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(context.options.heartbeat_interval_s):
            try:
                for member in members:
                    if not member.lost.is_set():
                        member.beat()
                # Reap from here too, so a dead peer's trial is re-queued even while every
                # live worker is busy with a long trial.
                context.reap()
            except DBAPIError as exc:
                log.warning("heartbeat failed (%s); retrying", exc.__class__.__name__)

    heart = threading.Thread(target=beat, daemon=True)
    heart.start()
    try:
        yield
    finally:
        done.set()
        heart.join()


__all__ = ["ATTR_PACKED_WITH", "PackRun"]
