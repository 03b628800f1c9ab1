"""A real PyTorch Lightning `Trainer` with `SweepdocCallback` against a real `serve`: an
absurd learning rate diverges, the server says stop and training stops; a sane one runs to
its last epoch and is finished; a server stopped and restarted mid-fit costs the training
nothing (pytorch-lightning is in the dev extras)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState as OptunaState
from torch.utils.data import DataLoader, TensorDataset

from studies.diagnosis import Label
from tests.service.runs_serve import api_server
from tests.service.serve_process import ServeProcess

pl = pytest.importorskip("pytorch_lightning", reason="pytorch-lightning (dev extras) is absent")

from service.lightning_callback import SweepdocCallback, flat_params  # noqa: E402
from tests.lightning_classifier import LoggingClassifier  # noqa: E402

MAX_EPOCHS = 8

# Lightning's own deprecations and its advice for big datasets, not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:.*LeafSpec.* is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:.*does not have many workers"),  # 256 rows: none needed
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with api_server(tmp_path_factory.mktemp("lightning")) as process:
        yield process


class Blobs(LoggingClassifier):
    """A small MLP classifying four Gaussian blobs; it logs as Lightning users do."""

    def __init__(self, lr: float, width: int = 32) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, width), torch.nn.ReLU(), torch.nn.Linear(width, 4)
        )

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"], momentum=0.9)


def blobs() -> tuple[DataLoader[Any], DataLoader[Any]]:
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 3
    labels = torch.arange(4).repeat_interleave(64)  # (256,)
    inputs = centers[labels] + torch.randn(256, 8)  # (256, 8)
    train = TensorDataset(inputs[::2], labels[::2])
    val = TensorDataset(inputs[1::2], labels[1::2])
    return DataLoader(train, batch_size=32, shuffle=True), DataLoader(val, batch_size=128)


def fit(server: ServeProcess, *, lr: float, run: str) -> tuple[Any, SweepdocCallback]:
    torch.manual_seed(0)
    callback = SweepdocCallback("lightning-blobs", url=server.url, run=run, num_classes=4)
    trainer = cpu_trainer(MAX_EPOCHS, [callback])
    trainer.fit(Blobs(lr=lr), *blobs())
    return trainer, callback


def cpu_trainer(max_epochs: int, callbacks: list[Any]) -> Any:
    """A quiet one-CPU Lightning trainer with *callbacks*."""
    return pl.Trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        logger=False,
        accelerator="cpu",
        devices=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )


def optuna_trial(server: ServeProcess, number: int) -> optuna.trial.FrozenTrial:
    study = optuna.load_study(study_name="runs:lightning-blobs", storage=server.database_url)
    return study.trials[number]


def test_a_diverging_lightning_run_is_stopped_by_the_server(server: ServeProcess) -> None:
    trainer, callback = fit(server, lr=1e4, run="absurd")

    last = callback.verdicts[-1]
    assert last.stop and "live divergence check" in (last.reason or "")
    assert all(not v.stop for v in callback.verdicts[:-1])
    # Lightning stopped where the server said, well before its max_epochs.
    assert trainer.should_stop and len(callback.verdicts) < MAX_EPOCHS
    assert trainer.current_epoch == len(callback.verdicts)
    assert callback.tracker is not None
    trial = optuna_trial(server, callback.tracker.run.optuna_trial_number)
    assert trial.state == OptunaState.PRUNED and trial.user_attrs["label"] == Label.DIVERGED


def test_a_sane_lightning_run_is_logged_every_epoch_and_finished(server: ServeProcess) -> None:
    _trainer, callback = fit(server, lr=0.05, run="sane")

    assert [v.epoch for v in callback.verdicts] == list(range(1, MAX_EPOCHS + 1))
    assert not any(v.stop for v in callback.verdicts)
    assert callback.tracker is not None
    run = callback.tracker.run
    assert run.state == "complete" and run.epochs_done == MAX_EPOCHS
    # Lightning's names mapped as the CSV reader maps them, the optimizer's lr added.
    assert run.metrics == ["train_loss", "val_loss", "train_acc", "val_acc", "lr"]
    assert run.params == {"lr": 0.05, "width": 32}  # the module's hparams
    assert run.best_val_acc is not None and run.best_val_acc > 0.5
    trial = optuna_trial(server, run.optuna_trial_number)
    assert trial.state == OptunaState.COMPLETE and trial.params == {"lr": 0.05, "width": 32.0}


def test_nested_hyperparameters_are_flattened_with_dots() -> None:
    hparams = {"optim": {"lr": 0.1, "betas": (0.9, 0.99)}, "arch": "mlp", "dropout": None}
    assert flat_params(hparams) == {"optim.lr": 0.1, "optim.betas": "(0.9, 0.99)", "arch": "mlp"}


class Outage(pl.Callback):  # type: ignore[misc,name-defined]
    """Stops the real server after epoch *down_after* and starts it again after *up_after*
    (listed before SweepdocCallback, so it acts before that epoch is posted)."""

    def __init__(self, server: ServeProcess, *, down_after: int, up_after: int) -> None:
        self.server, self.down_after, self.up_after = server, down_after, up_after

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch + 1
        if epoch == self.down_after + 1:
            assert self.server.stop() == 0
        if epoch == self.up_after + 1:
            self.server.restart()


def test_a_lightning_run_trains_on_through_a_server_outage(tmp_path: Path) -> None:
    with api_server(tmp_path) as server:
        torch.manual_seed(0)
        callback = SweepdocCallback(
            "lightning-outage", url=server.url, run="outage", num_classes=4
        )
        trainer = cpu_trainer(6, [Outage(server, down_after=2, up_after=4), callback])
        trainer.fit(Blobs(lr=0.05), *blobs())

        assert trainer.current_epoch == 6  # every epoch trained, none stopped by the outage
        kinds = [type(v).__name__ for v in callback.verdicts]
        assert kinds == ["Verdict", "Verdict", "PendingEpoch", "PendingEpoch", "Verdict", "Verdict"]
        assert callback.tracker is not None and callback.tracker.run is not None
        run = callback.tracker.run
        assert run.state == "complete" and run.epochs_done == 6
