"""The durable queue: claiming slots exactly once, heartbeats, the reaper, cancellation.

Every state change is one short transaction whose ``WHERE`` clause states what must still
be true (the slot is waiting; the slot is still ours), and whose row count says whether it
happened. That is all exactly-once needs:

- SQLite serializes writers, so a conditional ``UPDATE`` is evaluated under the write lock;
  nothing depends on ``SELECT … FOR UPDATE``, which SQLite ignores.
- PostgreSQL re-checks the ``WHERE`` of an ``UPDATE`` that waited on a concurrent one, so
  two workers can never both flip the same slot from waiting to running; the study row is
  locked (``FOR UPDATE``) first so ``max_parallel`` is counted after the previous claim
  committed.

Heartbeat and reaper. A running slot's worker updates ``heartbeat_at`` every
``heartbeat_interval_s`` (5 s by default) from a background thread, so long epochs do not
look dead. The claim stores the worker's own grace (``stale_after_s``, 30 s by default) in
the slot. Workers and the API (``store.reap_stale_trials``, run periodically) run
``reap_stale``: a running slot whose heartbeat is older than its worker's grace is taken
from that worker; the attempt is recorded as failed (its Optuna trial is marked FAIL) and
the slot is re-queued, up to ``MAX_ATTEMPTS`` attempts in all, after which the slot stays
failed. Every live worker reaps at most every ``heartbeat_interval_s``, from its poll loop
when idle and from its heartbeat thread while training, so a killed worker's trial is
failed and re-queued within its grace plus one reaper round as long as one worker or the
API is running. The attempt number fences the reaped worker: none of its later writes
lands (``_attempt``).
Timestamps come from the processes' clocks in UTC: keep hosts NTP-synchronized, and keep
``stale_after_s`` well above the worst clock skew.

One module per concern, all under the discipline above:

- ``_claim``: a waiting slot becomes one worker's (``claim_next``, ``try_claim``; the rest
  of a pack: ``claim_more``);
- ``_attempt``: what the worker holding a slot writes (``start_attempt``, ``mark_packed``,
  ``beat``, ``record_epoch``, ``record_epochs`` for a pack's members at once, ``finish``,
  ``release``), each conditional on the slot still being its;
- ``_reaper``: dead workers' slots failed and re-queued (``reap_stale``);
- ``_resume``: the epoch rows a resumed attempt continues (``latest_epochs``,
  ``continue_epochs``);
- ``_studies``: cancellation (``cancel``; ``end_waiting_if_cancelled`` for slots put back
  after it), a study's derived status, and the reads the worker needs
  (``has_open_slots``, ``work_marker``, ``complete_summaries``, ``count_complete``);
- ``_workers``: the workers' own rows (``touch_worker``), which readiness counts.
"""

from studies.queue._attempt import (
    EpochAck,
    EpochWrite,
    beat,
    finish,
    mark_packed,
    record_epoch,
    record_epochs,
    record_lr_range,
    release,
    start_attempt,
)
from studies.queue._claim import Claim, claim_more, claim_next, load_claim, try_claim
from studies.queue._reaper import MAX_ATTEMPTS, Reaped, reap_stale
from studies.queue._resume import StoredEpochs, continue_epochs, latest_epochs
from studies.queue._studies import (
    CompleteTrial,
    cancel,
    complete_summaries,
    count_complete,
    end_waiting_if_cancelled,
    has_open_slots,
    study_status,
    work_marker,
)
from studies.queue._workers import touch_worker

__all__ = [
    "MAX_ATTEMPTS",
    "Claim",
    "CompleteTrial",
    "EpochAck",
    "EpochWrite",
    "Reaped",
    "StoredEpochs",
    "beat",
    "cancel",
    "claim_more",
    "claim_next",
    "complete_summaries",
    "continue_epochs",
    "count_complete",
    "end_waiting_if_cancelled",
    "finish",
    "has_open_slots",
    "latest_epochs",
    "load_claim",
    "mark_packed",
    "reap_stale",
    "record_epoch",
    "record_epochs",
    "record_lr_range",
    "release",
    "start_attempt",
    "study_status",
    "touch_worker",
    "try_claim",
    "work_marker",
]
