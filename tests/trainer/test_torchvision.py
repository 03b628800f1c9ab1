"""torchvision's classification models by name: trained for real on 1-channel digits, local
weights files loaded (the head replaced for another class count), and refusals that say why.
Nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from pydantic import ValidationError

from service.commands.train import run_config
from trainer import (
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    RunStatus,
    torchvision_models,
    train,
)
from trainer._models import Network, build_model
from trainer._torchvision import GrayToRGB


def resnet18(**model: object) -> ModelConfig:
    return ModelConfig.model_validate({"arch": "torchvision:resnet18", **model})


def test_resnet18_trains_on_one_channel_digits() -> None:
    config = RunConfig(
        data=DataConfig(dataset="digits", train_subset=120, augment="none"),
        model=resnet18(),
        optim=OptimConfig(lr=0.01, epochs=1, batch_size=32, device="cpu"),
    )
    history = train(config)
    assert history.status is RunStatus.COMPLETED
    assert (history.data.num_classes, history.data.input_shape) == (10, (1, 8, 8))
    record = history.records[0]
    assert record.grad_norm_first > 0 and record.grad_norm_last > 0  # conv1 and fc found
    assert record.dead_relu_fraction is not None  # torchvision's nn.ReLU modules probed


def test_the_model_is_torchvisions_with_its_classifier_as_the_head() -> None:
    network = build_model(resnet18(), in_channels=1, image_size=8, num_classes=7)
    stem, backbone = network.features
    assert isinstance(stem, GrayToRGB)  # 1 channel replicated to the 3 resnet18 takes
    assert isinstance(backbone, torchvision.models.ResNet)
    assert isinstance(backbone.fc, torch.nn.Identity)
    assert (network.head.in_features, network.head.out_features) == (512, 7)
    assert network(torch.zeros(3, 1, 8, 8)).shape == (3, 7)
    rgb = build_model(resnet18(), in_channels=3, image_size=32, num_classes=10)
    assert isinstance(rgb.features[0], torchvision.models.ResNet)  # no stem for RGB


def _saved_weights(data_dir: Path, num_classes: int) -> torchvision.models.ResNet:
    source = torchvision.models.resnet18(weights=None, num_classes=num_classes)
    torch.save(source.state_dict(), data_dir / "weights" / "resnet18.pth")
    return source


@pytest.mark.parametrize("file_classes", [1000, 10], ids=["imagenet-head", "same-classes"])
def test_a_weights_file_is_loaded_and_the_head_replaced_for_another_class_count(
    tmp_path: Path, file_classes: int
) -> None:
    (tmp_path / "weights").mkdir()
    source = _saved_weights(tmp_path, file_classes)
    network = build_model(
        resnet18(weights_file="weights/resnet18.pth"),
        in_channels=3,
        image_size=32,
        num_classes=10,
        data_dir=tmp_path,
    )
    backbone = network.features[0]
    assert torch.equal(backbone.conv1.weight, source.conv1.weight)
    assert torch.equal(backbone.layer4[1].bn2.running_var, source.layer4[1].bn2.running_var)
    assert network.head.out_features == 10
    same_head = torch.equal(network.head.weight, source.fc.weight[:10])
    assert same_head is (file_classes == 10)  # a fresh head only for another class count


def test_a_weights_file_trains_through_the_cli_config(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    _saved_weights(tmp_path, 1000)
    values = {
        "arch": "torchvision:resnet18",
        "weights_file": "weights/resnet18.pth",
        "train_subset": "60",
        "epochs": "1",
        "device": "cpu",
    }
    history = train(run_config(values, data_dir=tmp_path))
    assert history.status is RunStatus.COMPLETED
    assert history.config.model.weights_file == "weights/resnet18.pth"


def test_bad_weights_files_are_refused_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "notes.pth").write_text("not a tensor file")
    torch.save({"fc.weight": [1, 2]}, tmp_path / "weights" / "lists.pth")
    torchvision_vgg = torchvision.models.vgg11(weights=None).state_dict()
    torch.save(torchvision_vgg, tmp_path / "weights" / "vgg.pth")
    cases = {
        "../outside.pth": "resolves outside the data root",
        "weights/missing.pth": "no file 'weights/missing.pth'",
        "weights/notes.pth": "cannot read 'weights/notes.pth' as a state dict",
        "weights/lists.pth": "is not a state dict",
        "weights/vgg.pth": "has no fc.weight matrix",
    }
    for relative, reason in cases.items():
        with pytest.raises(ConfigError, match=f"^weights_file: .*{reason}"):
            build_model(
                resnet18(weights_file=relative),
                in_channels=3,
                image_size=32,
                num_classes=10,
                data_dir=tmp_path,
            )


def test_a_weights_file_needs_a_torchvision_model() -> None:
    with pytest.raises(ValidationError, match="applies to torchvision models only"):
        ModelConfig(arch="simple", weights_file="w.pth")


def test_unknown_names_get_the_closest_ones() -> None:
    with pytest.raises(ValidationError, match=r"did you mean .*resnet18") as info:
        ModelConfig(arch="torchvision:resnet81")
    assert info.value.errors()[0]["loc"] == ("arch",)
    assert "squeezenet1_0" not in torchvision_models()  # a convolutional classifier
    assert {"resnet18", "vit_b_16", "convnext_tiny"} <= set(torchvision_models())


def test_a_model_that_cannot_take_the_image_size_is_refused_before_training() -> None:
    # Five 2×2 poolings cannot run on 8×8 digits.
    with pytest.raises(ConfigError, match=r"arch: torchvision:vgg11 cannot take 1×8×8 images"):
        build_model(
            ModelConfig(arch="torchvision:vgg11"), in_channels=1, image_size=8, num_classes=10
        )
    with pytest.raises(ConfigError, match="takes 1- or 3-channel images, the dataset has 4"):
        build_model(resnet18(), in_channels=4, image_size=32, num_classes=10)


def test_the_network_keeps_the_trainers_contract() -> None:
    network = build_model(
        ModelConfig(arch="torchvision:mobilenet_v3_small"),
        in_channels=3,
        image_size=32,
        num_classes=5,
    )
    assert isinstance(network, Network)
    assert isinstance(network.head, torch.nn.Linear) and network.head.out_features == 5
    assert network.features(torch.zeros(2, 3, 32, 32)).shape == (2, network.head.in_features)


@pytest.mark.parametrize(
    "name",
    ["resnet18", "mobilenet_v3_small", "efficientnet_b0", "shufflenet_v2_x0_5", "googlenet"],
)
def test_features_then_head_computes_what_torchvisions_model_does(name: str) -> None:
    """The split is exact: the classifier put back where torchvision had it, the untouched
    model answers the same logits (so its last Linear was its last operation)."""
    network = build_model(
        ModelConfig(arch=f"torchvision:{name}"), in_channels=3, image_size=64, num_classes=5
    ).eval()
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model = network.features[0]
    path = [p for p, m in model.named_modules() if isinstance(m, torch.nn.Identity)][-1]
    with torch.no_grad():
        ours = network(images)
        parent, _, leaf = path.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, network.head)
        assert torch.allclose(model(images), ours, atol=1e-5)
