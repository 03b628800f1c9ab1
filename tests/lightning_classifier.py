"""The logging half of the LightningModules the tests train, written as Lightning users
write it: ``train_loss`` and ``train_acc`` per step and per epoch, ``val_loss`` and
``val_acc`` per epoch. The Lightning log readers (tests/runlogs) and ``SweepdocCallback``
(tests/service) meet the same names, as they would in a user's run.

Import it after ``pytest.importorskip("pytorch_lightning")``: pytorch-lightning is in the
dev extras only.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch


class LoggingClassifier(pl.LightningModule):  # type: ignore[misc,name-defined]
    """A classifier whose subclass sets ``self.net`` (inputs → logits) and the optimizer."""

    net: torch.nn.Module

    def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
        inputs, labels = batch
        logits = self.net(inputs)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.log("train_acc", (logits.argmax(1) == labels).float().mean(), on_epoch=True)
        return loss

    def validation_step(self, batch: list[torch.Tensor], index: int) -> None:
        inputs, labels = batch
        logits = self.net(inputs)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, labels))
        self.log("val_acc", (logits.argmax(1) == labels).float().mean())
