"""CSV logs: Keras' and Lightning's CSVLogger files, per-step rows grouped into epochs, and
every refusal naming its column."""

from __future__ import annotations

import pytest

from studies.runlogs import Aggregation, ChosenBy, IgnoreReason, RunLogError, read_csv
from tests.runlogs.logs import KERAS_CSV, LIGHTNING_CSV


def test_a_keras_csv_logger_file_becomes_the_four_curves_and_lr() -> None:
    log = read_csv(KERAS_CSV)

    assert log.curves.train_loss == [1.10, 0.80, 0.65, 0.55]
    assert log.curves.val_acc == [0.70, 0.78, 0.80, 0.82]
    assert log.curves.lr == [0.01] * 4
    sources = {m.curve: m.source for m in log.mapping.mapped}
    assert sources == {
        "train_loss": "loss",
        "val_loss": "val_loss",
        "train_acc": "accuracy",
        "val_acc": "val_accuracy",
        "lr": "learning_rate",
    }
    assert {m.aggregation for m in log.mapping.mapped} == {Aggregation.ONE_PER_EPOCH}
    assert [(i.source, i.reason) for i in log.mapping.ignored] == [("epoch", IgnoreReason.INDEX)]
    assert log.mapping.epochs == 4


def test_lightning_metrics_csv_takes_the_epoch_columns_last_value_and_reports_the_rest() -> None:
    log = read_csv(LIGHTNING_CSV)

    assert log.curves.train_loss == [1.8, 1.1, 0.8]  # train_loss_epoch, not the step mean
    assert log.curves.val_loss == [1.40, 1.00, 0.80]
    assert log.curves.val_acc == [0.50, 0.70, 0.80]
    mapped = {m.curve: (m.source, m.aggregation) for m in log.mapping.mapped}
    assert mapped["train_loss"] == ("train_loss_epoch", Aggregation.ONE_PER_EPOCH)
    ignored = {i.source: i for i in log.mapping.ignored}
    assert ignored["train_loss_step"].reason == IgnoreReason.SUPERSEDED
    assert "train_loss_epoch" in ignored["train_loss_step"].detail
    assert ignored["step"].reason == IgnoreReason.INDEX
    assert ignored["epoch"].reason == IgnoreReason.INDEX


def test_per_step_rows_are_averaged_and_epoch_columns_take_their_last_value() -> None:
    text = (
        "epoch,step,train_loss,val_loss_epoch\n"
        "0,0,2.0,\n0,1,1.0,\n0,1,,5.0\n0,1,,1.5\n"  # val_loss_epoch twice: the last counts
        "1,2,0.9,\n1,3,0.7,\n1,3,,1.2\n"
    )
    log = read_csv(text)

    assert log.curves.train_loss == [1.5, 0.8]  # the mean of each epoch's step rows
    assert log.curves.val_loss == [1.5, 1.2]
    aggregation = {m.curve: m.aggregation for m in log.mapping.mapped}
    assert aggregation == {"train_loss": Aggregation.MEAN, "val_loss": Aggregation.LAST}


def test_a_nan_step_makes_its_epoch_non_finite_evidence_of_divergence() -> None:
    log = read_csv("epoch,train_loss\n0,2.0\n0,1.5\n1,1.2\n1,nan\n")
    assert log.curves.train_loss == [1.75, None]


@pytest.mark.parametrize(
    "name", ["validation_loss", "val_loss_epoch", "valid/loss", "Loss/val", "valLoss"]
)
def test_other_names_of_the_validation_loss_are_mapped(name: str) -> None:
    log = read_csv(f"epoch,train_loss,{name}\n0,1.0,1.1\n1,0.8,0.9\n")
    assert log.curves.val_loss == [1.1, 0.9]
    assert [m.source for m in log.mapping.mapped if m.curve == "val_loss"] == [name]


def test_unknown_metrics_are_reported_never_silently_dropped() -> None:
    log = read_csv("epoch,loss,val_top5_acc,f1,phase\n0,1.0,0.9,0.3,a\n1,0.8,0.95,0.4,b\n")
    ignored = {i.source: i for i in log.mapping.ignored}

    # Each key once: mapped, or ignored with one reason.
    assert sorted(i.source for i in log.mapping.ignored) == ["epoch", "f1", "phase", "val_top5_acc"]
    assert ignored["val_top5_acc"].reason == IgnoreReason.UNRECOGNISED_METRIC
    assert "'top5'" in ignored["val_top5_acc"].detail and "--map" in ignored["f1"].detail
    assert ignored["phase"].reason == IgnoreReason.NOT_A_METRIC
    assert "line 2 holds 'a'" in ignored["phase"].detail


def test_map_beats_the_names_and_can_use_any_column() -> None:
    log = read_csv(
        "epoch,loss,val_top5_acc,val_accuracy\n0,1.0,0.9,0.5\n1,0.8,0.95,0.6\n",
        overrides={"val_acc": "val_top5_acc"},
    )
    assert log.curves.val_acc == [0.9, 0.95]
    chosen = {m.curve: (m.source, m.chosen_by) for m in log.mapping.mapped}
    assert chosen["val_acc"] == ("val_top5_acc", ChosenBy.MAP)
    ignored = {i.source: i for i in log.mapping.ignored}
    assert ignored["val_accuracy"].reason == IgnoreReason.SUPERSEDED


def test_a_trailing_epoch_without_validation_is_dropped_with_a_note() -> None:
    log = read_csv("epoch,loss,val_loss\n0,1.0,1.1\n1,0.8,0.9\n2,0.7,\n")
    assert log.curves.train_loss == [1.0, 0.8]
    assert any("epoch 2 left out" in note for note in log.mapping.notes)


def test_rows_without_an_epoch_column_are_one_epoch_each() -> None:
    log = read_csv("train_loss;val_loss\n1.0;1.2\n0.8;1.0\n0.6;0.9\n")  # semicolons too
    assert log.curves.val_loss == [1.2, 1.0, 0.9]


@pytest.mark.parametrize(
    ("text", "overrides", "field", "reason"),
    [
        ("epoch,loss,val_accuracy\n0,1.0,55.0\n1,0.8,61.0\n", {}, "val_accuracy",
         "(as val_acc) epoch 1 holds 55.0, outside [0, 1] (give fractions, not percentages)"),
        ("epoch,loss,val_loss\n0,1.0,1.1\n1,0.8,\n2,0.7,0.8\n", {}, "val_loss",
         "no value in epoch 1"),
        ("epoch,validation_loss,eval_loss\n0,1.0,1.0\n", {}, "val_loss",
         "'validation_loss' and 'eval_loss' both look like val_loss; choose one with --map"),
        ("epoch,f1\n0,0.5\n", {}, "(log)", "no column or tag became one of the curves"),
        ("epoch,loss\n0,1.0\n", {"val_loss": "nope"}, "map.val_loss",
         "the log has no column or tag 'nope'; it has: loss"),
        ("epoch,loss\n0,1.0\n", {"val_los": "loss"}, "map.val_los", "not a curve"),
        ("epoch,loss,val_loss\n0,1.0,high\n", {}, "val_loss", "not a number: line 2 holds"),
        ("epoch,loss\nzero,1.0\n", {}, "epoch", "line 2 holds 'zero', not an epoch number"),
        ("epoch,loss,loss\n0,1,1\n", {}, "loss", "two columns have this name"),
        ("epoch,loss\n0,1.0,3\n", {}, "(csv)", "line 2 has 3 fields, the header 2"),
        ("", {}, "(csv)", "empty"),
        ("epoch,loss\n0,\"" + "1" * 200_000 + "\"\n", {}, "(csv)", "not readable as CSV"),
    ],
    ids=["percent", "gap", "ambiguous", "no-curve", "map-missing-key", "map-bad-curve",
         "text-in-metric", "bad-epoch", "duplicate", "ragged", "empty", "huge-cell"],
)
def test_bad_logs_are_refused_naming_the_column(
    text: str, overrides: dict[str, str], field: str, reason: str
) -> None:
    with pytest.raises(RunLogError) as caught:
        read_csv(text, overrides=overrides)
    assert caught.value.field == field
    assert reason in caught.value.reason
