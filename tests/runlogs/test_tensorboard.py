"""TensorBoard logs written by the real writers: PyTorch's SummaryWriter (tutorial style,
per-step, Lightning's layout) and TensorBoard's own writer (Keras' tensor scalars in train/ and
validation/ subfolders)."""

from __future__ import annotations

from pathlib import Path

import pytest

from studies.runlogs import (
    Aggregation,
    IgnoreReason,
    RunLogError,
    read_tensorboard,
    read_tensorboard_bytes,
)
from tests.runlogs import logs


def test_a_pytorch_tutorial_run_folder_is_read_by_tag_name(tmp_path: Path) -> None:
    log = read_tensorboard(logs.torch_tutorial_run(tmp_path / "run"))

    assert log.curves.train_loss == pytest.approx([1.0, 0.5, 1 / 3, 0.25])
    assert log.curves.val_loss == pytest.approx([1.2, 0.6, 0.4, 0.3])
    assert log.curves.val_acc == pytest.approx([0.5, 0.6, 0.7, 0.8])
    assert {m.curve: m.source for m in log.mapping.mapped} == {
        "train_loss": "Loss/train",
        "val_loss": "Loss/val",
        "val_acc": "Accuracy/val",
    }
    assert log.mapping.format == "tensorboard"


def test_one_event_file_and_its_bytes_read_the_same(tmp_path: Path) -> None:
    path = logs.event_file(logs.torch_tutorial_run(tmp_path / "run"))
    from_file = read_tensorboard(path)
    from_bytes = read_tensorboard_bytes(path.read_bytes())
    assert from_file == from_bytes
    assert from_file.mapping.epochs == 4


def test_per_step_points_are_grouped_into_the_sparsest_tags_epochs(tmp_path: Path) -> None:
    log = read_tensorboard(logs.per_step_run(tmp_path / "run", epochs=3, steps_per_epoch=4))

    # train/loss at steps 0..11 (2.0 - 0.1 step); epochs end at val/loss's steps 3, 7, 11.
    assert log.curves.train_loss == pytest.approx([1.85, 1.45, 1.05])
    assert log.curves.val_loss == pytest.approx([2.0, 1.5, 1.0])
    aggregation = {m.curve: m.aggregation for m in log.mapping.mapped}
    assert aggregation == {"train_loss": Aggregation.MEAN, "val_loss": Aggregation.ONE_PER_EPOCH}
    assert any("train/loss: 12 points grouped into the 3 epochs" in n for n in log.mapping.notes)


def test_lightning_layout_groups_steps_by_its_epoch_scalar(tmp_path: Path) -> None:
    log = read_tensorboard(logs.lightning_style_run(tmp_path / "version_0"))

    assert log.curves.train_loss == pytest.approx([1.8, 1.1])  # train_loss_epoch
    assert log.curves.val_loss == pytest.approx([1.4, 1.0])
    ignored = {i.source: i.reason for i in log.mapping.ignored}
    assert ignored == {
        "epoch": IgnoreReason.INDEX,
        "hp_metric": IgnoreReason.NOT_A_METRIC,
        "train_loss_step": IgnoreReason.SUPERSEDED,
    }
    assert any("'epoch' scalar" in note for note in log.mapping.notes)


def test_keras_subfolders_name_the_split_and_its_tensors_are_read(tmp_path: Path) -> None:
    log = read_tensorboard(logs.keras_style_run(tmp_path / "logs", epochs=3))

    assert log.curves.val_loss == pytest.approx([1.1, 0.55, 1.1 / 3])
    assert log.curves.train_acc == pytest.approx([0.6, 0.7, 0.8])
    assert {m.curve: m.source for m in log.mapping.mapped} == {
        "train_loss": "train/epoch_loss",
        "val_loss": "validation/epoch_loss",
        "train_acc": "train/epoch_accuracy",
        "val_acc": "validation/epoch_accuracy",
        "lr": "train/epoch_learning_rate",
    }
    (unknown,) = log.mapping.ignored
    assert unknown.source == "validation/evaluation_loss_vs_iterations"
    assert unknown.reason == IgnoreReason.UNRECOGNISED_METRIC


def test_map_picks_a_tag_whose_name_says_nothing(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path)) as writer:
        for epoch in range(3):
            writer.add_scalar("objective/held_out", 1.0 - 0.1 * epoch, epoch)
            writer.add_scalar("loss", 1.2 - 0.2 * epoch, epoch)
    alone = read_tensorboard(tmp_path)
    assert alone.curves.val_loss is None
    assert [i.source for i in alone.mapping.ignored] == ["objective/held_out"]

    mapped = read_tensorboard(tmp_path, overrides={"val_loss": "objective/held_out"})
    assert mapped.curves.val_loss == pytest.approx([1.0, 0.9, 0.8])


def test_a_folder_of_several_runs_says_to_give_one(tmp_path: Path) -> None:
    logs.torch_tutorial_run(tmp_path / "version_0")
    logs.torch_tutorial_run(tmp_path / "version_1")
    with pytest.raises(RunLogError, match="give one run's folder"):
        read_tensorboard(tmp_path)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "no TensorBoard event file"),
        (b"\x00garbage" * 40, "hold no scalar"),
    ],
    ids=["no-event-file", "garbage"],
)
def test_unreadable_input_is_refused_naming_the_path(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    path = tmp_path
    if content is not None:
        path = tmp_path / "events.out.tfevents.1.host"
        path.write_bytes(content)
    with pytest.raises(RunLogError, match=reason) as caught:
        read_tensorboard(path)
    assert caught.value.field == str(path)


def test_a_scalar_tag_holding_text_is_refused_naming_the_folder(tmp_path: Path) -> None:
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    metadata = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
    text = tensor_util.make_tensor_proto("high")
    value = Summary.Value(tag="val_loss", metadata=metadata, tensor=text)
    writer = EventFileWriter(str(tmp_path))
    writer.add_event(Event(step=0, summary=Summary(value=[value])))
    writer.close()
    with pytest.raises(RunLogError, match="not a readable TensorBoard event file") as caught:
        read_tensorboard(tmp_path)
    assert caught.value.field == str(tmp_path)
