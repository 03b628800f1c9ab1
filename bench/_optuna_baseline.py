"""The baseline of bench/optuna_compare.py: a learning-rate search the way Optuna's own
PyTorch example (optuna-examples, pytorch/pytorch_simple.py) does it.

`optuna.create_study(direction="maximize")` (its default pruner, MedianPruner()), in-memory
storage, an objective that builds the model, trains it with a torch DataLoader loop,
evaluates every epoch, `trial.report(accuracy, epoch)` and raises `optuna.TrialPruned` when
`trial.should_prune()`; `study.optimize(objective, n_trials=...)`. No diagnosis, no
divergence check. It runs in a fresh interpreter of its own, as a user's script would.

What differs from the example, so both systems train the very same networks on the very
same batches (and only stopping and overheads tell them apart):
- the model is sweepdoc's (trainer._models.build_model from the same ModelConfig), seeded
  with torch.manual_seed(seed) before it is built, as sweepdoc's trainer does;
- the DataLoader shuffles with a seeded sampler that draws each epoch's permutation as
  sweepdoc's trainer does (same seed, one torch.randperm per epoch): the same batches;
- data: digits come as the tensors of trainer._data.prepare_data (sweepdoc's split and
  normalisation) in a TensorDataset; MNIST images are read once from the same train/ and val/
  folders and held in memory as uint8, each item made a PIL image and put through ToTensor +
  Normalize (the mean and std of the training images, sweepdoc's preprocessing) when read, as
  torchvision's MNIST dataset of the example does;
- the learning rates are enqueued (`study.enqueue_trial`) in the order sweepdoc ran them, and
  `trial.suggest_float("lr", low, high, log=True)` reads them back;
- the objective value is the best validation accuracy so far (sweepdoc's objective); the last
  epoch's accuracy (the example's) is kept as a user attribute.

    .venv/bin/python bench/_optuna_baseline.py RECIPE.json OUT.json

RECIPE.json (written by bench/optuna_compare.py): dataset ("digits" or "mnist"),
data_root + folder (mnist), val_fraction, split_seed, model (a ModelConfig), epochs,
batch_size, seed, lr_low, lr_high, lrs. OUT.json: per trial its lr, state, per-epoch
val accuracy and seconds; the wall time from create_study to the end of optimize.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

STARTED = time.perf_counter()  # before the heavy imports: the script's start-up is reported

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the model builder and digits' split come from the trainer

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset  # noqa: E402

from trainer import DataConfig, ModelConfig  # noqa: E402
from trainer._data import prepare_data  # noqa: E402
from trainer._models import build_model  # noqa: E402

EVAL_BATCH = 1000


class SeededShuffle(Sampler[int]):
    """``shuffle=True`` from a seeded generator, one ``torch.randperm`` per epoch: the order
    sweepdoc's trainer draws. (RandomSampler draws a second, empty permutation per epoch
    and the DataLoader a base seed from its generator, so their orders drift apart.)"""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.size, generator=self.generator).tolist())


def digits_datasets(recipe: dict[str, Any]) -> tuple[Dataset[Any], Dataset[Any]]:
    """sweepdoc's split and normalisation of the 8×8 digits, as two TensorDatasets."""
    config = DataConfig(
        dataset="digits",
        augment="none",
        val_fraction=recipe["val_fraction"],
        split_seed=recipe["split_seed"],
    )
    data = prepare_data(config, torch.device("cpu"))
    return TensorDataset(data.train_x, data.train_y), TensorDataset(data.val_x, data.val_y)


class InMemoryImages(Dataset[Any]):
    """What torchvision's MNIST/FashionMNIST datasets (the example's) do: the uint8 images
    held in memory, each item made a PIL image and transformed when it is read. Built from
    the exported ImageFolder tree once (decoding the PNGs at every epoch would slow the
    baseline down for a reason the example does not have), in ImageFolder's order."""

    def __init__(self, folder: Path, transform: Any) -> None:
        from torchvision import datasets

        source = datasets.ImageFolder(folder, lambda image: image.convert("L"))
        images, labels = zip(*source, strict=True)
        self.images = torch.stack([torch.from_numpy(np.array(image)) for image in images])
        self.targets = list(labels)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        image = Image.fromarray(self.images[index].numpy(), mode="L")
        return self.transform(image), self.targets[index]


def mnist_datasets(recipe: dict[str, Any]) -> tuple[Dataset[Any], Dataset[Any]]:
    """The exported MNIST images as torchvision's MNIST holds them: ToTensor, Normalize."""
    from torchvision import transforms

    tree = Path(recipe["data_root"]) / recipe["folder"]
    train = InMemoryImages(tree / "train", transforms.ToTensor())
    # Per-channel mean and std of the training images, as sweepdoc's preprocessing takes them.
    pixels = train.images.float().div(255)
    mean, std = [pixels.mean().item()], [max(pixels.std().item(), 1e-6)]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    train.transform = transform
    return train, InMemoryImages(tree / "val", transform)


def make_objective(
    recipe: dict[str, Any],
    train_set: Dataset[Any],
    val_set: Dataset[Any],
    log: list[dict[str, Any]],
) -> Any:
    """The example's objective, with sweepdoc's model; each trial's epochs go to *log*."""
    channels, height, _ = train_set[0][0].shape
    model_config = ModelConfig(**recipe["model"])

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", recipe["lr_low"], recipe["lr_high"], log=True)
        torch.manual_seed(recipe["seed"])
        model = build_model(model_config, in_channels=channels, image_size=height, num_classes=10)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        order = SeededShuffle(len(train_set), recipe["seed"])  # type: ignore[arg-type]
        train_loader = DataLoader(train_set, batch_size=recipe["batch_size"], sampler=order)
        val_loader = DataLoader(val_set, batch_size=EVAL_BATCH)
        entry: dict[str, Any] = {"number": trial.number, "lr": lr, "val_acc": [], "seconds": []}
        log.append(entry)
        best = 0.0
        for epoch in range(recipe["epochs"]):
            started = time.perf_counter()
            model.train()
            for data, target in train_loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(data), target)
                loss.backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for data, target in val_loader:
                    correct += int((model(data).argmax(dim=1) == target).sum())
            accuracy = correct / len(val_set)  # type: ignore[arg-type]
            entry["val_acc"].append(accuracy)
            entry["seconds"].append(time.perf_counter() - started)
            best = max(best, accuracy)
            trial.set_user_attr("last_val_acc", accuracy)
            trial.report(accuracy, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return best

    return objective


def main() -> None:
    recipe = json.loads(Path(sys.argv[1]).read_text())
    loaded = time.perf_counter()
    train_set, val_set = (digits_datasets if recipe["dataset"] == "digits" else mnist_datasets)(
        recipe
    )
    prepared = time.perf_counter()
    log: list[dict[str, Any]] = []
    objective = make_objective(recipe, train_set, val_set, log)

    began = time.perf_counter()
    study = optuna.create_study(direction="maximize")
    for lr in recipe["lrs"]:
        study.enqueue_trial({"lr": lr})
    study.optimize(objective, n_trials=len(recipe["lrs"]))
    wall_s = time.perf_counter() - began

    states = {t.number: t for t in study.trials}
    for entry in log:
        trial = states[entry["number"]]
        entry["state"] = trial.state.name.lower()
        entry["last_val_acc"] = trial.user_attrs.get("last_val_acc")
    result = {
        "wall_s": wall_s,
        "startup_s": loaded - STARTED,  # interpreter and imports (optuna, torch)
        "data_prep_s": prepared - loaded,
        "pruner": type(study.pruner).__name__,
        "trials": log,
        "torch_threads": torch.get_num_threads(),
    }
    Path(sys.argv[2]).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
