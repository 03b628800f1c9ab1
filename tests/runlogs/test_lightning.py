"""Real PyTorch Lightning runs: its CSVLogger and TensorBoardLogger, written by a real
`Trainer`, read into the same curves (pytorch-lightning is in the dev extras, issue 16 part 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.runlogs import IgnoreReason, read_csv, read_tensorboard

pl = pytest.importorskip("pytorch_lightning", reason="pytorch-lightning (dev extras) is absent")

import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from tests.lightning_classifier import LoggingClassifier  # noqa: E402

EPOCHS = 3


class Classifier(LoggingClassifier):
    """A linear classifier of two classes of 4-d points."""

    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(4, 2)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _train(root: Path) -> tuple[Path, Path]:
    """A tiny classifier trained for EPOCHS epochs, logged to CSV and TensorBoard at once."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long()
    loader = DataLoader(TensorDataset(x, y), batch_size=8)
    csv_logger = pl.loggers.CSVLogger(str(root / "csv"))
    tb_logger = pl.loggers.TensorBoardLogger(str(root / "tb"))
    trainer = pl.Trainer(
        max_epochs=EPOCHS, logger=[csv_logger, tb_logger], log_every_n_steps=2,
        accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(Classifier(), loader, loader)
    return Path(csv_logger.log_dir) / "metrics.csv", Path(tb_logger.log_dir)


# Lightning's own deprecations (its pytree use of torch's LeafSpec), not ours to fix.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*LeafSpec.* is deprecated:FutureWarning")
@pytest.mark.filterwarnings("ignore:.*does not have many workers")  # 64 rows: none needed
def test_a_real_lightning_run_reads_the_same_from_csv_and_tensorboard(tmp_path: Path) -> None:
    metrics_csv, tb_folder = _train(tmp_path)

    from_csv = read_csv(metrics_csv.read_text())
    from_tb = read_tensorboard(tb_folder)

    for log in (from_csv, from_tb):
        assert log.mapping.epochs == EPOCHS
        sources = {m.curve: m.source for m in log.mapping.mapped}
        # Training values are logged per step and per epoch: the per-epoch keys are chosen.
        per_epoch = {"train_loss": "train_loss_epoch", "train_acc": "train_acc_epoch"}
        assert sources == {**per_epoch, "val_loss": "val_loss", "val_acc": "val_acc"}
        ignored = {i.source: i.reason for i in log.mapping.ignored}
        assert ignored["train_loss_step"] == IgnoreReason.SUPERSEDED
        assert ignored["train_acc_step"] == IgnoreReason.SUPERSEDED
        assert ignored["epoch"] == IgnoreReason.INDEX
    # Two loggers, two formats, one run: the same values (TensorBoard stores float32).
    for curve in ("train_loss", "train_acc", "val_loss", "val_acc"):
        assert getattr(from_tb.curves, curve) == pytest.approx(
            getattr(from_csv.curves, curve), rel=1e-6
        )
