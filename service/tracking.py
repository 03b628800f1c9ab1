"""Diagnose a training loop of your own, live: each epoch goes to a sweepdoc server, which
answers whether to go on (the live divergence check sweepdoc's own workers run).

```python
from service.tracking import Tracker

with Tracker("http://127.0.0.1:8000", project="cifar-resnet", run="lr=0.1",
             params={"lr": 0.1, "batch_size": 128}, num_classes=10) as tracker:
    for epoch in range(1, epochs + 1):
        ...  # train and evaluate
        verdict = tracker.log_epoch(
            epoch, train_loss=tl, val_loss=vl, train_acc=ta, val_acc=va, lr=lr
        )
        if verdict.stop:
            print(verdict.reason)
            break
# leaving the block finishes the run: its full diagnosis is at GET /v1/runs/{id}/diagnosis
```

A metric left out (None) is one the loop does not log; a NaN or ±inf is sent as a
non-finite value (JSON null), which is how a divergence shows. The first epoch's metrics
are the run's: log the same ones every epoch. For PyTorch Lightning see
``service.lightning_callback.SweepdocCallback``.

The server going away never stops the training (unless ``strict=True``): when it cannot be
reached, or answers 5xx or 429, the tracker logs one warning, answers ``PendingEpoch``
(continue), keeps the epochs it could not send (``max_pending`` of them, the earliest) and
sends them, in order, once the server answers again (tried with a later epoch, 1 s after a
failed try at first, the wait doubling to a minute, and at ``finish``); a run it could not
even create is created then. ``finish`` says in a warning
what never reached the server (``Tracker.unsent``). A refusal of what was sent (422 naming
the field, 409, 401, 404) is the loop's to fix and is always raised.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, TypedDict, TypeVar, Unpack

from service.client import ApiError, SweepdocClient, WithBlock, client_for
from studies.diagnosis import Diagnosis
from studies.runs import Action, EpochLog, RunPublic, Verdict
from studies.spec import Objective

log = logging.getLogger(__name__)

T = TypeVar("T")

# Epochs kept while the server is away; a loop that outruns it loses the later ones.
DEFAULT_MAX_PENDING = 1000
# Seconds between tries while the server is away: the first wait, doubled up to the longest.
_FIRST_WAIT_S = 1.0
_LONGEST_WAIT_S = 60.0


class TrackerOptions(TypedDict, total=False):
    """How a run is reported, for ``Tracker`` and ``SweepdocCallback`` alike.

    *token*: the server's token (default SWEEPDOC_API_TOKEN); *params*: the run's
    hyperparameters, flat; *num_classes*: lets the diagnoser see chance level; *objective*:
    what the project's Optuna study optimizes (default val_acc); *strict*: raise when the
    server cannot be reached or fails (default False: warn once, keep training, resend
    later); *max_pending*: most epochs kept for a later resend (default 1000).
    """

    token: str | None
    params: dict[str, Any] | None
    num_classes: int | None
    objective: Objective
    strict: bool
    max_pending: int


@dataclass(frozen=True)
class PendingEpoch:
    """What ``log_epoch`` answers for an epoch the server has not heard (yet): go on
    training. *reason* says whether it waits for a resend or will never be sent."""

    epoch: int
    reason: str
    action: Literal[Action.CONTINUE] = Action.CONTINUE
    diagnosis: Diagnosis | None = None

    @property
    def stop(self) -> bool:
        return False


class Tracker(WithBlock):
    """One run of a training loop on a sweepdoc server: created on construction, one
    ``log_epoch`` per finished epoch, ``finish()`` at the end (or leave the ``with`` block).

    *url*: the server (default SWEEPDOC_URL); *options*: see ``TrackerOptions``; *client*:
    a client of your own (not closed here).
    """

    def __init__(
        self,
        url: str | None,
        project: str,
        run: str,
        *,
        client: SweepdocClient | None = None,
        **options: Unpack[TrackerOptions],
    ) -> None:
        unknown = sorted(options.keys() - TrackerOptions.__optional_keys__)
        if unknown:
            raise TypeError(f"Tracker got unknown options: {', '.join(unknown)}")
        self.client = client if client is not None else client_for(url, token=options.get("token"))
        self._owns_client = client is None
        self.strict = options.get("strict", False)
        self.max_pending = options.get("max_pending", DEFAULT_MAX_PENDING)
        if self.max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got max_pending={self.max_pending}")
        self._create_run = partial(
            self.client.create_run,
            project,
            run,
            params=options.get("params"),
            num_classes=options.get("num_classes"),
            objective=options.get("objective", Objective.VAL_ACC),
        )
        self.run: RunPublic | None = None
        self.last_verdict: Verdict | None = None  # the server's latest answer
        self._pending: deque[EpochLog] = deque()
        self._logged = False
        self._away: str | None = None  # why the server cannot be reached, while it cannot
        # While it is away it is asked again after a wait that doubles (a host that drops
        # packets costs a whole request timeout per try, which the loop would wait for).
        self._retry_after_s = _FIRST_WAIT_S
        self._next_try_at = 0.0
        self.unsent: list[int] = []  # the epochs that will never reach the server
        self._unsent_why: str | None = None
        self._deliver(self._send_pending, retry=True)

    @property
    def run_id(self) -> int | None:
        """The run's id on the server (None until the server could create it)."""
        return self.run.id if self.run is not None else None

    @property
    def pending(self) -> list[int]:
        """The epochs waiting for the server, in order."""
        return [epoch.epoch for epoch in self._pending]

    def log_epoch(
        self,
        epoch: int,
        *,
        train_loss: float | None = None,
        val_loss: float | None = None,
        train_acc: float | None = None,
        val_acc: float | None = None,
        lr: float | None = None,
    ) -> Verdict | PendingEpoch:
        """Send one finished epoch (1-based); the verdict says continue or stop, and why.

        Accuracies are fractions in [0, 1]. Raises ``InvalidRequest`` naming the field for a
        value the server refuses, ``Conflict`` for an epoch already sent with other values
        and for any epoch after a stop (the run has ended; start a new one). With the server
        away: ``PendingEpoch`` (see the module's doc).
        """
        given = {
            "train_loss": train_loss,
            "val_loss": val_loss,
            "train_acc": train_acc,
            "val_acc": val_acc,
            "lr": lr,
        }
        # Only what was given is sent; a non-finite value travels as null (JSON has no NaN).
        sent = {key: _finite_or_none(value) for key, value in given.items() if value is not None}
        body = EpochLog.model_validate({"epoch": epoch, **sent})
        self._logged = True
        if self._unsent_why is None and len(self._pending) >= self.max_pending:
            self._unsent_why = f"more than max_pending={self.max_pending} epochs waited"
        if self._unsent_why is not None:
            # Once an epoch is given up, so is every later one: the server takes no gaps.
            self.unsent.append(epoch)
            return PendingEpoch(epoch, f"never sent: {self._unsent_why}")
        self._pending.append(body)
        verdict = None
        if self._away is None or self.strict or time.monotonic() >= self._next_try_at:
            # While the server is away, one try at a time: the loop is not held up by retries.
            verdict = self._deliver(self._send_pending, retry=self._away is None)
        if verdict is None:
            return PendingEpoch(
                epoch, f"{len(self._pending)} epoch(s) wait for the server ({self._away})"
            )
        return verdict

    def finish(self) -> RunPublic | None:
        """Send what is pending and end the run with its full diagnosis (a run the server
        stopped stays stopped). None when the server cannot be told (not with ``strict``);
        a warning then says which epochs did not reach it."""
        self._deliver(self._send_pending, retry=True)
        if self._away is not None:
            self._give_up_pending(f"the server was away at the end ({self._away})")
        elif self.last_verdict is not None:  # the server holds epochs: end the run
            run_id = self.last_verdict.run_id
            finished = self._deliver(lambda _: self.client.finish_run(run_id), retry=True)
            self.run = finished if finished is not None else self.run
        lost = []
        if self.unsent:
            lost.append(f"epochs {_ranges(self.unsent)} never reached it ({self._unsent_why})")
        if self._away is not None:
            lost.append(f"the run was not finished: the server is away ({self._away})")
        if lost:
            run = f"run {self.run.id}" if self.run is not None else "the run (never created)"
            log.warning("sweepdoc %s: %s", run, "; ".join(lost))
        return self.run if self._away is None else None

    def diagnosis(self) -> Diagnosis:
        """The run's diagnosis: final once finished, provisional before."""
        if self.run is None:
            raise RuntimeError("the run was never created: the server could not be reached")
        return self.client.run_diagnosis(self.run.id)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def _leave(self, *, failed: bool) -> None:
        try:
            # A loop that raised did not finish: its run stays running, as it is.
            if not failed and self._logged:
                self.finish()
        finally:
            self.close()

    # -- delivery ----------------------------------------------------------------------

    def _send_pending(self, retry: bool) -> Verdict | None:
        """Create the run if the server could not yet, then send the pending epochs in
        order; the last one's verdict (a stop ends the run: what follows is given up)."""
        if self.run is None:
            # Never retried by the client: an answer lost after the server created the run
            # would create a second one (an empty run, which DELETE /v1/runs/{id} removes).
            self.run = self._create_run()
        verdict = None
        while self._pending:
            try:
                verdict = self.client.log_epoch(self.run.id, self._pending[0], retry=retry)
            except ApiError as exc:
                if not exc.transient:
                    self._pending.popleft()  # refused: the loop's to fix, never resent
                raise
            self._pending.popleft()
            self.last_verdict = verdict
            if verdict.stop and self._pending:
                self._give_up_pending(f"the server stopped the run at epoch {verdict.epoch}")
        return verdict

    def _deliver(self, send: Callable[[bool], T], *, retry: bool) -> T | None:
        """``send(retry)``; None while the server is away (one warning per outage), which
        strict mode raises instead. A refusal (4xx) is always raised."""
        try:
            answer = send(retry)
        except ApiError as exc:
            if self.strict or not exc.transient:
                raise
            if self._away is None:
                log.warning(
                    "sweepdoc server unavailable: %s; training goes on, and up to %d epochs "
                    "are kept and resent once it answers",
                    str(exc).splitlines()[0],
                    self.max_pending,
                )
            else:
                self._retry_after_s = min(2 * self._retry_after_s, _LONGEST_WAIT_S)
            self._away = str(exc).splitlines()[0]
            self._next_try_at = time.monotonic() + self._retry_after_s
            return None
        if self._away is not None:
            log.warning("sweepdoc server answers again: the epochs it missed were sent")
            self._away = None
            self._retry_after_s = _FIRST_WAIT_S
        return answer

    def _give_up_pending(self, why: str) -> None:
        """Never send the pending epochs (nor any later one)."""
        self.unsent = sorted({*self.unsent, *(epoch.epoch for epoch in self._pending)})
        self._pending.clear()
        self._unsent_why = self._unsent_why or why


def _ranges(epochs: list[int]) -> str:
    """``[3, 4, 5, 9]`` as ``3-5, 9``."""
    parts: list[str] = []
    for epoch in sorted(set(epochs)):
        if parts and parts[-1].split("-")[-1] == str(epoch - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{epoch}"
        else:
            parts.append(str(epoch))
    return ", ".join(parts)


def _finite_or_none(value: float) -> float | None:
    value = float(value)  # numpy and torch scalars too
    return value if math.isfinite(value) else None
