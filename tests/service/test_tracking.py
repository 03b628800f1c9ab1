"""A hand-written PyTorch loop with `Tracker` against a real `serve`: a sane learning rate
runs to the end and is finished with its diagnosis; an absurd one is told to stop; a server
stopped and restarted mid-run costs the loop nothing (its epochs are resent in order), and
what could not be sent is said at the end."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState as OptunaState

from service.client import Conflict, InvalidRequest, ServerUnreachable, SweepdocClient
from service.tracking import PendingEpoch, Tracker
from studies.diagnosis import Label
from studies.runs import Verdict
from tests.service.runs_serve import FAST_LOOP_ENV, api_server
from tests.service.serve_process import ServeProcess, serving

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


def blob_epoch(epoch: int) -> dict[str, float]:
    """A plausible epoch of a loop that learns (no divergence for the live check to see)."""
    return {"train_loss": 1.4 / epoch, "val_loss": 1.5 / epoch, "val_acc": 0.2 + 0.1 * epoch}


def test_a_server_stopped_and_restarted_mid_run_costs_the_loop_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The loop goes on while `serve` is down; what it logged meanwhile reaches the server,
    in order, once it is back; one warning when it went away."""
    caplog.set_level(logging.WARNING, logger="service.tracking")
    with api_server(tmp_path) as server:
        with Tracker(server.url, "outage", "r", num_classes=4) as tracker:
            for epoch in (1, 2):
                assert isinstance(tracker.log_epoch(epoch, **blob_epoch(epoch)), Verdict)
            assert server.stop() == 0
            for epoch in (3, 4, 5):
                answer = tracker.log_epoch(epoch, **blob_epoch(epoch))
                assert isinstance(answer, PendingEpoch) and not answer.stop
                assert "wait for the server" in answer.reason
            assert tracker.pending == [3, 4, 5]
            unavailable = [r for r in caplog.records if "unavailable" in r.getMessage()]
            assert len(unavailable) == 1  # warned once, not once per epoch
            server.restart()
            verdict = tracker.log_epoch(6, **blob_epoch(6))
            assert isinstance(verdict, Verdict) and verdict.epoch == 6
            assert tracker.pending == [] and tracker.unsent == []
        assert tracker.run is not None and tracker.run.state == "complete"
        with SweepdocClient(server.url) as client:
            stored = client.run(tracker.run.id)
        assert stored.epochs_done == 6
        assert stored.curves["val_acc"] == pytest.approx([blob_epoch(e)["val_acc"] for e in
                                                          range(1, 7)])
        assert any("answers again" in r.getMessage() for r in caplog.records)


def test_a_server_away_from_the_start_gets_the_run_once_it_answers(tmp_path: Path) -> None:
    """No server at all when the loop starts: the run is created when it first answers."""
    server = ServeProcess(
        tmp_path, database_url=f"sqlite:///{tmp_path / 'sweepdoc.db'}", workers=0,
        env_overrides=FAST_LOOP_ENV,
    )
    tracker = Tracker(server.url, "late-server", "r")
    assert tracker.run is None and tracker.run_id is None
    assert isinstance(tracker.log_epoch(1, **blob_epoch(1)), PendingEpoch)
    with serving(server, workers=0):
        assert isinstance(tracker.log_epoch(2, **blob_epoch(2)), Verdict)
        finished = tracker.finish()
        assert finished is not None and finished.epochs_done == 2
        tracker.close()


def test_a_full_buffer_and_a_server_still_away_at_the_end_are_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="service.tracking")
    with api_server(tmp_path) as server:
        tracker = Tracker(server.url, "lossy", "r", max_pending=2)
        assert isinstance(tracker.log_epoch(1, **blob_epoch(1)), Verdict)
        server.stop()
        answers = [tracker.log_epoch(epoch, **blob_epoch(epoch)) for epoch in (2, 3, 4, 5)]
        assert tracker.pending == [2, 3] and tracker.unsent == [4, 5]
        assert "never sent: more than max_pending=2" in answers[2].reason
        assert tracker.finish() is None  # the server cannot be told
        tracker.close()
    assert tracker.unsent == [2, 3, 4, 5]
    (report,) = [r.getMessage() for r in caplog.records if "never reached" in r.getMessage()]
    assert f"run {tracker.run_id}: epochs 2-5 never reached it" in report
    assert "the run was not finished" in report


def test_strict_mode_raises_when_the_server_is_away(tmp_path: Path) -> None:
    with api_server(tmp_path) as server:
        tracker = Tracker(server.url, "strict", "r", strict=True)
        tracker.log_epoch(1, **blob_epoch(1))
        server.stop()
        with pytest.raises(ServerUnreachable):
            tracker.log_epoch(2, **blob_epoch(2))
        tracker.close()


def test_an_unknown_tracker_option_is_refused_by_name() -> None:
    with pytest.raises(TypeError, match="unknown options: retries"):
        Tracker("http://127.0.0.1:9", "p", "r", retries=3)  # type: ignore[call-arg]
