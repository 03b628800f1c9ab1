"""A PyTorch Lightning callback that streams every epoch to a sweepdoc server and stops
training when the server's live check says the run diverged.

```python
from service.lightning_callback import SweepdocCallback

trainer = pl.Trainer(max_epochs=30, callbacks=[SweepdocCallback(project="cifar-resnet")])
trainer.fit(model, datamodule)   # the run's diagnosis: GET /v1/runs/{id}/diagnosis
```

At the end of each training epoch (after its validation) the callback reads
``trainer.callback_metrics`` and maps them to the four curves by their names with the rules
``sweepdoc diagnose`` uses for Lightning's CSV logs (``train_loss``, ``val_loss_epoch``,
``valid/acc`` …; ``metric_map={"val_acc": "my_metric"}`` overrides them), adds the first
optimizer's learning rate unless a logged metric gives it, posts the epoch, and sets
``trainer.should_stop`` when the answer is stop. When fitting ends the run is finished.
Accuracies must be logged as fractions in [0, 1], and validation must run every epoch (the
first epoch's curves are the run's: each later epoch must carry the same ones).

Lightning is imported only by this module (``pytorch_lightning``, or ``lightning``), and
only the global-zero process talks to the server; its verdict reaches every process.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Unpack

try:  # the standalone package first; the unified `lightning` package has the same API
    import pytorch_lightning as pl
except ImportError:  # pragma: no cover - depends on what the user installed
    import lightning.pytorch as pl  # type: ignore[no-redef]

from service.tracking import PendingEpoch, Tracker, TrackerOptions
from studies.runlogs._names import choose
from studies.runs import EPOCH_KEYS, Verdict

log = logging.getLogger(__name__)

_PARAM_TEXT_CHARS = 200  # the server's limit on a text parameter


class SweepdocCallback(pl.Callback):
    """Log each epoch to the sweepdoc server at *url* (default SWEEPDOC_URL) as a run of
    *project*; stop training when the server says stop.

    *run*: the run's name (default: the module's class and the start time); *metric_map*:
    curve → metric name, for names the rules do not recognise; *options*: the tracker's
    (``service.tracking.TrackerOptions``: token, params (default: the module's ``hparams``,
    flattened), num_classes, objective, strict, max_pending). The server away does not stop
    training unless ``strict=True``: see ``service.tracking``.
    """

    def __init__(
        self,
        project: str,
        *,
        url: str | None = None,
        run: str | None = None,
        metric_map: Mapping[str, str] | None = None,
        **options: Unpack[TrackerOptions],
    ) -> None:
        super().__init__()
        self.project = project
        self.url = url
        self.run_name = run
        self.metric_map = dict(metric_map or {})
        self.options = options
        self.tracker: Tracker | None = None
        self.verdicts: list[Verdict | PendingEpoch] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self.tracker is not None:
            return
        started = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        options = self.options.copy()
        if options.get("params") is None:
            options["params"] = flat_params(pl_module.hparams)
        self.tracker = Tracker(
            self.url,
            self.project,
            self.run_name or f"{type(pl_module).__name__}-{started}",
            **options,
        )

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stop = False
        if self.tracker is not None and not trainer.sanity_checking:
            verdict = self.tracker.log_epoch(trainer.current_epoch + 1, **self._curves(trainer))
            self.verdicts.append(verdict)
            if verdict.stop:
                log.warning("sweepdoc run %s: %s", self.tracker.run_id, verdict.reason)
                stop = True
        # Every process must stop together; only global zero heard the server.
        if trainer.strategy.reduce_boolean_decision(stop, all=False):
            trainer.should_stop = True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.tracker is None:
            return
        try:
            if self.verdicts:
                self.tracker.finish()
        finally:
            self.tracker.close()

    def _curves(self, trainer: pl.Trainer) -> dict[str, float]:
        """This epoch's curves from the logged metrics (their names mapped as the CSV reader
        maps Lightning's columns), and the learning rate."""
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if getattr(value, "numel", lambda: 1)() == 1
        }
        chosen, _ignored = choose(sorted(metrics), self.metric_map)
        curves = {choice.curve: metrics[choice.key] for choice in chosen}
        if "lr" not in curves and trainer.optimizers:
            curves["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        return {curve: value for curve, value in curves.items() if curve in EPOCH_KEYS}


def flat_params(hparams: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """*hparams* as the flat parameters a run takes: nested mappings joined with dots,
    numbers and booleans as they are, anything else as its text (cut to the server's limit)."""
    flat: dict[str, Any] = {}
    for key, value in hparams.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_params(value, prefix=f"{name}."))
        elif isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
            flat[name] = value
        elif value is not None:
            flat[name] = str(value)[:_PARAM_TEXT_CHARS]
    return flat
