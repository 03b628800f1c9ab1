"""A hand-written PyTorch loop with `Tracker` against a real `serve`: a sane learning rate
runs to the end and is finished with its diagnosis; an absurd one is told to stop."""

from __future__ import annotations

from collections.abc import Iterator

import optuna
import pytest
import torch
from optuna.trial import TrialState as OptunaState

from service.client import Conflict, InvalidRequest, SweepdocClient
from service.tracking import Tracker
from studies.diagnosis import Label
from tests.service.runs_serve import api_server
from tests.service.serve_process import ServeProcess

EPOCHS = 6


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    with api_server(tmp_path_factory.mktemp("tracking")) as process:
        yield process


def train(tracker: Tracker, *, lr: float) -> int:
    """A small MLP on four separable blobs, the way a user writes a loop; the epochs run."""
    torch.manual_seed(0)
    centers = torch.randn(4, 8) * 3
    labels = torch.arange(4).repeat_interleave(64)  # (256,)
    inputs = centers[labels] + torch.randn(256, 8)  # (256, 8)
    train_x, val_x, train_y, val_y = inputs[::2], inputs[1::2], labels[::2], labels[1::2]
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for epoch in range(1, EPOCHS + 1):
        model.train()
        for batch in torch.split(torch.randperm(len(train_x)), 32):
            loss = torch.nn.functional.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
        model.eval()
        with torch.no_grad():
            train_logits, val_logits = model(train_x), model(val_x)
        verdict = tracker.log_epoch(
            epoch,
            train_loss=torch.nn.functional.cross_entropy(train_logits, train_y).item(),
            val_loss=torch.nn.functional.cross_entropy(val_logits, val_y).item(),
            train_acc=(train_logits.argmax(1) == train_y).float().mean().item(),
            val_acc=(val_logits.argmax(1) == val_y).float().mean().item(),
            lr=optimizer.param_groups[0]["lr"],
        )
        if verdict.stop:
            return epoch
    return EPOCHS


def test_a_sane_loop_runs_to_the_end_and_is_finished_with_its_diagnosis(
    server: ServeProcess,
) -> None:
    with Tracker(server.url, "blobs", "lr=0.05", params={"lr": 0.05}, num_classes=4) as tracker:
        assert train(tracker, lr=0.05) == EPOCHS
    # Leaving the block finished the run.
    run = tracker.run
    assert run.state == "complete" and run.epochs_done == EPOCHS
    assert run.label is not None and run.label is not Label.DIVERGED
    with SweepdocClient(server.url) as client:
        assert client.run_diagnosis(run.id).label == run.label
    trial = optuna.load_study(study_name="runs:blobs", storage=server.database_url).trials[
        run.optuna_trial_number
    ]
    assert trial.state == OptunaState.COMPLETE
    assert trial.value == pytest.approx(run.best_val_acc)
    assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))


def test_an_absurd_learning_rate_is_told_to_stop_before_the_end(server: ServeProcess) -> None:
    with Tracker(server.url, "blobs", "lr=1e4", params={"lr": 1e4}, num_classes=4) as tracker:
        stopped_at = train(tracker, lr=1e4)
        verdict = tracker.last_verdict
    assert verdict is not None and verdict.stop
    assert stopped_at < EPOCHS
    assert "live divergence check" in (verdict.reason or "")
    assert tracker.run.state == "stopped" and tracker.run.label == Label.DIVERGED
    trial = optuna.load_study(study_name="runs:blobs", storage=server.database_url).trials[
        tracker.run.optuna_trial_number
    ]
    assert trial.state == OptunaState.PRUNED and trial.user_attrs["label"] == "diverged"


def test_the_tracker_sends_nan_as_nonfinite_and_refusals_name_the_field(
    server: ServeProcess,
) -> None:
    with SweepdocClient(server.url) as client:
        tracker = Tracker(None, "tracker-edges", "r", client=client, num_classes=4)
        assert not tracker.log_epoch(1, train_loss=1.3, val_loss=1.3, val_acc=0.3).stop
        with pytest.raises(InvalidRequest) as refused:
            tracker.log_epoch(2, train_loss=1.2, val_acc=0.4)  # val_loss went missing
        assert [e.field for e in refused.value.errors] == ["val_loss"]
        with pytest.raises(Conflict):
            tracker.log_epoch(1, train_loss=9.9, val_loss=1.3, val_acc=0.3)
        verdict = tracker.log_epoch(2, train_loss=float("nan"), val_loss=1.2, val_acc=0.4)
        assert verdict.stop and verdict.diagnosis is not None
        assert client.run(tracker.run_id).curves["train_loss"] == [1.3, None]
