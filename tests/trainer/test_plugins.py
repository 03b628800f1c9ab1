"""Plugins in the trainer: the example package's model and dataset trained for real, their
options checked by the plugins' own models, and every broken contract named by plugin.

The package is tests/plugins/sweepdoc_example_plugin, installed into the test environment
(`make install-dev`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.commands.train import run_config
from trainer import (
    ConfigError,
    DataConfig,
    FinetuneStrategy,
    ModelConfig,
    OptimConfig,
    PluginKind,
    RunConfig,
    RunStatus,
    describe_plugins,
    load_checkpoint,
    train,
)
from trainer._external_models import check_takes
from trainer._models import PluginNetwork, build_model, first_layer


def plugin_config(*, val_per_class: int = 0, epochs: int = 3, **optim: object) -> RunConfig:
    return RunConfig(
        data=DataConfig(
            dataset="plugin:blobs",
            dataset_options={"per_class": 30, "val_per_class": val_per_class},
        ),
        model=ModelConfig(arch="plugin:tiny-cnn", options={"hidden": 12}),
        optim=OptimConfig.model_validate(
            {"lr": 0.05, "epochs": epochs, "device": "cpu", "batch_size": 16, **optim}
        ),
    )


@pytest.mark.parametrize("val_per_class", [0, 10], ids=["split-by-sweepdoc", "own-val-dataset"])
def test_a_plugin_model_trains_on_a_plugin_dataset(val_per_class: int) -> None:
    history = train(plugin_config(val_per_class=val_per_class))
    assert history.status is RunStatus.COMPLETED
    assert history.data.num_classes == 3
    assert history.data.input_shape == (1, 8, 8)
    # 90 training images: held out by val_fraction 0.2, or all kept next to the plugin's 30.
    expected = (72, 18) if val_per_class == 0 else (90, 30)
    assert (history.data.train_size, history.data.val_size) == expected
    last = history.records[-1]
    # Health statistics find the plugin model's first and last layers.
    assert last.grad_norm_first > 0 and last.grad_norm_last > 0
    assert last.dead_relu_fraction is not None
    # Three bands on noise: learnt well past chance (1/3) in 3 epochs.
    assert history.best_val_acc is not None and history.best_val_acc > 0.6


def test_the_same_options_give_the_same_run() -> None:
    first = train(plugin_config(epochs=1)).curves()
    again = train(plugin_config(epochs=1)).curves()
    assert first == again


def test_options_are_checked_by_the_plugins_own_model_and_stored_with_defaults() -> None:
    config = ModelConfig(arch="plugin:tiny-cnn", options={"hidden": 4})
    assert config.options == {"hidden": 4, "channels": 8}
    with pytest.raises(ValidationError) as info:
        ModelConfig(arch="plugin:tiny-cnn", options={"hidden": 0, "channels": 999})
    (error,) = info.value.errors()
    assert error["loc"] == ("options",)
    assert error["msg"].startswith("Value error, hidden: Input should be greater than or equal")
    assert "channels: Input should be less than or equal to 256" in error["msg"]


def test_the_cli_takes_options_as_json_and_names_the_option(tmp_path: Path) -> None:
    values = {"arch": "plugin:tiny-cnn", "options": '{"hidden": 5}', "dataset": "plugin:blobs"}
    config = run_config(values, data_dir=tmp_path)
    assert config.model.options == {"hidden": 5, "channels": 8}
    with pytest.raises(ValueError, match=r"--options: .*must be a JSON object"):
        run_config({**values, "options": "{hidden: 5}"}, data_dir=tmp_path)


def test_plugin_options_on_a_builtin_dataset_are_refused() -> None:
    with pytest.raises(ValidationError, match="dataset_options: applies to plugin datasets only"):
        DataConfig(dataset="digits", dataset_options={"seed": 1})


def test_a_plugin_that_cannot_be_imported_is_named_with_its_error() -> None:
    with pytest.raises(ValidationError) as info:
        ModelConfig(arch="plugin:broken")
    message = info.value.errors()[0]["msg"]
    assert "model plugin 'broken' (sweepdoc-example-plugin 0.1.0) cannot be loaded" in message
    assert "ModuleNotFoundError" in message
    described = {d.entry.name: d for d in describe_plugins(PluginKind.MODEL)}
    assert described["broken"].error is not None and described["tiny-cnn"].error is None


def test_a_plugin_model_is_checked_on_the_datasets_images_before_training() -> None:
    config = ModelConfig(arch="plugin:tiny-cnn")
    network = build_model(config, in_channels=1, image_size=8, num_classes=4)
    assert isinstance(network, PluginNetwork)
    assert network.head.out_features == 4  # its last layer with weights
    assert first_layer(network) is network.features[0]
    check = {"label": "model plugin 'tiny-cnn'", "image_size": 8}
    with pytest.raises(ConfigError, match=r"must answer \(batch, 3\) logits.* got \(2, 4\)"):
        check_takes(network, in_channels=1, num_classes=3, **check)
    with pytest.raises(ConfigError, match=r"'tiny-cnn' cannot take 5×8×8 images: RuntimeError"):
        check_takes(network, in_channels=5, num_classes=4, **check)


def test_a_plugin_model_checkpoint_fine_tunes_in_full_but_not_as_a_linear_probe(
    tmp_path: Path,
) -> None:
    checkpoint = tmp_path / "best.pt"
    train(plugin_config(epochs=1), checkpoint_path=checkpoint)
    assert load_checkpoint(checkpoint).config.model.arch == "plugin:tiny-cnn"
    full = train(
        plugin_config(epochs=1, init_from=checkpoint, finetune=FinetuneStrategy.FULL)
    )
    assert full.status is RunStatus.COMPLETED
    with pytest.raises(ConfigError, match="init_from: model plugin 'tiny-cnn'"):
        train(
            plugin_config(epochs=1, init_from=checkpoint, finetune=FinetuneStrategy.LINEAR_PROBE)
        )
