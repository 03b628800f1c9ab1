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
"""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any

from service.client import SweepdocClient, client_for
from studies.diagnosis import Diagnosis
from studies.runs import EpochLog, RunPublic, Verdict
from studies.spec import Objective


class Tracker:
    """One run of a training loop on a sweepdoc server: created on construction, one
    ``log_epoch`` per finished epoch, ``finish()`` at the end (or leave the ``with`` block).

    *url*: the server (default SWEEPDOC_URL); *token*: its token (default
    SWEEPDOC_API_TOKEN); *params*: the run's hyperparameters, flat; *num_classes*: lets the
    diagnoser see chance level; *objective*: what the project's Optuna study optimizes.
    """

    def __init__(
        self,
        url: str | None,
        project: str,
        run: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        num_classes: int | None = None,
        objective: Objective = Objective.VAL_ACC,
        client: SweepdocClient | None = None,
    ) -> None:
        self.client = client if client is not None else client_for(url, token=token)
        self._owns_client = client is None
        self.run: RunPublic = self.client.create_run(
            project, run, params=params, num_classes=num_classes, objective=objective
        )
        self.last_verdict: Verdict | None = None

    @property
    def run_id(self) -> int:
        return self.run.id

    def log_epoch(
        self,
        epoch: int,
        *,
        train_loss: float | None = None,
        val_loss: float | None = None,
        train_acc: float | None = None,
        val_acc: float | None = None,
        lr: float | None = None,
    ) -> Verdict:
        """Send one finished epoch (1-based); the verdict says continue or stop, and why.

        Accuracies are fractions in [0, 1]. Raises ``InvalidRequest`` naming the field for a
        value the server refuses, ``Conflict`` for an epoch already sent with other values
        and for any epoch after a stop (the run has ended; start a new one).
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
        self.last_verdict = self.client.log_epoch(
            self.run_id, EpochLog.model_validate({"epoch": epoch, **sent})
        )
        return self.last_verdict

    def finish(self) -> RunPublic:
        """End the run with its full diagnosis (a run the server stopped stays stopped)."""
        self.run = self.client.finish_run(self.run_id)
        return self.run

    def diagnosis(self) -> Diagnosis:
        """The run's diagnosis: final once finished, provisional before."""
        return self.client.run_diagnosis(self.run_id)

    def close(self) -> None:
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            # A loop that raised did not finish: its run stays running, as it is.
            if exc_type is None and self.last_verdict is not None:
                self.finish()
        finally:
            self.close()


def _finite_or_none(value: float) -> float | None:
    value = float(value)  # numpy and torch scalars too
    return value if math.isfinite(value) else None
