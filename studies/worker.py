"""The worker: claim a slot, run it, repeat, until stopped, drained, done or idle.

``run_worker`` warms the trainer up, then polls the queue (``studies.queue``): each round it
marks itself alive (``/readyz``), reaps the slots of dead peers (at most every
``heartbeat_interval_s``) and claims the next waiting slot, which ``studies.trial_run``
runs from its Optuna trial to its stored result (each epoch recorded by
``studies.recorder``). A database that goes away is waited for, not fatal: the poll loop
logs and retries, and a trial whose writes keep failing is abandoned to the reaper.
SIGTERM/SIGINT (or *stop*) hands the running slot back at its next epoch; *drain* lets it
finish and then ends the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from types import FrameType

import optuna
from sqlalchemy.exc import DBAPIError

from studies import chain, queue
from studies.db import Database
from studies.pack_run import PackRun
from studies.packing import pack_limit
from studies.schema_setup import create_schema
from studies.trial_run import WorkerContext
from studies.worker_options import WorkerOptions

log = logging.getLogger(__name__)

# How often an idle worker reads ``queue.work_marker`` between two claim rounds.
_WAKE_CHECK_S = 0.1


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
                worker.touch(None)  # no longer working on anything
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
    """One worker process: its name and device, the claim loop, and what its trials call
    back into (``touch``, ``reap``, through ``WorkerContext``)."""

    def __init__(
        self, options: WorkerOptions, stop: threading.Event, drain: threading.Event
    ) -> None:
        self.options = options
        self.stop = stop
        self.drain = drain
        self.db = Database(options.database_url)
        create_schema(self.db)
        self.name = options.worker_name
        self.device = _resolve_device(options.device)
        self._last_reap = 0.0
        self._ran = 0  # trials run so far (a pack of K counts K)
        self._pack_limits: dict[int, int] = {}  # study id -> pack size (studies.packing)
        self.context = WorkerContext(
            db=self.db,
            device=self.device,
            options=options,
            stop=stop,
            touch=self.touch,
            reap=self.reap,
        )
        self.chain_server = chain.ChainServer(
            limits=options.spec_limits,
            data_root=options.data_dir,
            artifacts_dir=options.artifacts_dir,
            max_unfinished=options.max_queued_studies,
        )

    def touch(self, current_trial_id: int | None) -> None:
        """Mark this worker alive (``/readyz``), running *current_trial_id* or nothing."""
        queue.touch_worker(
            self.db,
            name=self.name,
            host=socket.gethostname(),
            pid=os.getpid(),
            device=self.device,
            current_trial_id=current_trial_id,
        )

    def reap(self) -> None:
        """Reap dead peers' slots, at most once per ``heartbeat_interval_s``."""
        now = time.monotonic()
        if now - self._last_reap < self.options.heartbeat_interval_s:
            return
        self._last_reap = now
        try:
            queue.reap_stale(self.db)
        except DBAPIError:
            raise  # the callers wait for the database and retry
        except Exception:
            # Reaping is a service to other workers' trials; a failure to close one
            # (say, an Optuna write) must not stop this worker or its heartbeat.
            log.exception("reaping stale trials failed; retrying at the next round")

    def loop(self) -> int:
        self._ran = 0
        log.info("worker %s on %s polling %s", self.name, self.device, self.db.engine.url)
        while not self.stop.is_set():
            if self.options.max_trials is not None and self._ran >= self.options.max_trials:
                break
            if self.drain.is_set():
                log.info("worker %s draining: no new trial after %d run", self.name, self._ran)
                break
            try:
                self.touch(None)
                self.reap()
                marker = queue.work_marker(self.db)  # before the claim: no change missed
                claims = self._claim()
                if not claims:
                    if self.options.exit_when_idle and not queue.has_open_slots(self.db):
                        break
                    self._wait_for_work(marker)
                    continue
            except DBAPIError as exc:
                # The database may be restarting: wait and retry rather than exit.
                log.warning("database unavailable (%s); retrying", exc.__class__.__name__)
                self.stop.wait(self.options.poll_interval_s)
                continue
            ids = [claim.trial_id for claim in claims]
            run = PackRun(self.context, claims)
            try:
                run.run()
            except (DBAPIError, optuna.exceptions.StorageInternalError) as exc:
                # The database went away mid-trial and stayed away: the slots' heartbeat
                # stops, so the reaper re-queues them; this worker carries on polling.
                log.warning("trials %s abandoned: database error %s", ids, exc)
            except Exception as exc:
                # A bug after training (diagnosis, an Optuna write) fails these trials,
                # not the worker.
                log.exception("trials %s failed after training", ids)
                run.fail(exc)
            # The study's last slot just finished? Then its follow-up round, at once.
            chain.advance_after_slot(self.db, claims[0].study_id, server=self.chain_server)
            self._ran += len(claims)
        return self._ran

    def _wait_for_work(self, marker: tuple[int, int, int]) -> None:
        """Sleep up to ``poll_interval_s`` after an empty claim, or until the queue's
        *marker* changes (checked every ``_WAKE_CHECK_S``, one read): a study submitted to
        an idle worker starts at once, not up to a poll interval later. An idle queue costs
        reads only; the claim round's writes (alive mark, reaping) wait for a change or the
        poll interval."""
        deadline = time.monotonic() + self.options.poll_interval_s
        while (left := deadline - time.monotonic()) > 0:
            if self.stop.wait(min(_WAKE_CHECK_S, left)):
                return
            if queue.work_marker(self.db) != marker:
                return

    def _claim(self) -> list[queue.Claim]:
        """The next waiting slot, and as many more of its study as this worker packs with
        it (``studies.packing``); none when nothing is waiting. ``max_trials`` caps the
        pack too."""
        claim = queue.claim_next(
            self.db, worker=self.name, device=self.device, stale_after_s=self.options.stale_after_s
        )
        if claim is None:
            return []
        limit = self._pack_limit(claim)
        if self.options.max_trials is not None:
            limit = min(limit, self.options.max_trials - self._ran)
        more = queue.claim_more(
            self.db,
            claim,
            limit - 1,
            device=self.device,
            stale_after_s=self.options.stale_after_s,
        )
        return [claim, *more]

    def _pack_limit(self, claim: queue.Claim) -> int:
        """Pack size for the claim's study, decided once per study (its spec never changes)."""
        limit = self._pack_limits.get(claim.study_id)
        if limit is None:
            try:
                limit = pack_limit(
                    claim.spec,
                    device=self.device,
                    worker_max=self.options.max_pack,
                    data_dir=self.options.data_dir,
                )
            except Exception:
                # The spec's config cannot be built here (its trial will report why): alone.
                log.exception("study %s: no pack size; its trials train alone", claim.study_id)
                limit = 1
            self._pack_limits[claim.study_id] = limit
        return limit


__all__ = ["WorkerOptions", "run_worker"]
