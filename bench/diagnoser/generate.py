"""Generate the diagnoser's labeled set: REAL training runs whose label is true by construction.

Each run trains a real CNN with the project's trainer under conditions that make its label
true (docs/diagnoser.md, "Labeled set"): a sensible recipe → healthy; a tiny training subset
and a big unregularised model, or memorised label noise → overfitting; a capacity-starved or
heavily regularised model trained to a plateau → underfitting; a learning rate far too low
→ undertrained; a learning rate far too high → diverged. Both the bundled 8×8 digits and
the real 28×28 MNIST test images (exported once to an ImageFolder tree) are used, with
several architectures, optimizers and seeds.

Every run is written to ``runs/<id>.json`` (compact, floats rounded to 4 significant
digits) with the label, how it was made, the config and the train/held-out split. The split
is a hash of the run id, fixed before any threshold was tuned. The script is resumable: a
run whose JSON exists is skipped.

    .venv/bin/python bench/diagnoser/generate.py [--dataset digits|mnist] [--only ID-PREFIX]
        [--mnist /work/shared/data/mnist-10k] [--list] [--reverse]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages

from bench._mnist import export_mnist as _export_mnist  # noqa: E402

RUNS_DIR = HERE / "runs"
DEFAULT_MNIST = Path("/work/shared/data/mnist-10k")
MNIST_ROOT = Path("/tmp/sweepdoc-diagnoser-data")
MNIST_FOLDER = "mnist6k"
MNIST_TRAIN, MNIST_VAL = 5000, 1000  # images written to train/ and val/ of the tree
HELDOUT_SHARE = 3  # one run in three (by id hash) is held out


@dataclass(frozen=True)
class Run:
    """One labeled run: its id, the label its construction makes true, and its config."""

    id: str
    label: str
    dataset: str  # digits | mnist
    how: str
    data: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    optim: dict[str, Any] = field(default_factory=dict)

    @property
    def split(self) -> str:
        digest = int(hashlib.sha1(self.id.encode()).hexdigest()[:8], 16)
        return "heldout" if digest % HELDOUT_SHARE == 0 else "train"

    @property
    def cuttable(self) -> bool:
        """Long constant-LR runs: their cuts are labeled by what the rest of the run shows."""
        return self.optim.get("schedule") == "none" and self.optim.get("epochs", 0) >= 20


def _runs() -> list[Run]:
    runs: list[Run] = []

    def add(label: str, dataset: str, name: str, how: str, **parts: dict[str, Any]) -> None:
        seed = parts.get("optim", {}).get("seed", 0)
        runs.append(Run(f"{dataset}-{label}-{name}-s{seed}", label, dataset, how, **parts))

    # ---- digits (1,437 train / 360 val images, 8×8, 10 classes): seconds per run ----------
    for seed in (0, 1, 2, 3):
        for arch, width in (("simple", 32), ("vgg", 16), ("resnet", 16)):
            add("healthy", "digits", f"{arch}-sgd-cosine",
                f"{arch} w{width}, SGD lr 0.05 momentum 0.9, wd 5e-4, cosine, crop aug, 30 ep",
                model={"arch": arch, "width": width},
                optim={"lr": 0.05, "epochs": 30, "schedule": "cosine", "seed": seed})
        add("healthy", "digits", "simple-adam-cosine",
            "simple w32, Adam lr 1e-3, wd 0, cosine, crop aug, 30 epochs",
            model={"arch": "simple", "width": 32},
            optim={"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "epochs": 30,
                   "schedule": "cosine", "seed": seed})
        # Long constant-LR runs: whole runs are healthy; their cuts are labeled by the future.
        add("healthy", "digits", "simple-sgd-const",
            "simple w32, SGD lr 0.02, wd 5e-4, constant LR, crop aug, 40 epochs",
            model={"arch": "simple", "width": 32},
            optim={"lr": 0.02, "epochs": 40, "schedule": "none", "seed": seed})
        add("healthy", "digits", "vgg-adam-const",
            "vgg w16, Adam lr 1e-3, wd 0, constant LR, crop aug, 40 epochs",
            model={"arch": "vgg", "width": 16},
            optim={"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "epochs": 40,
                   "schedule": "none", "seed": seed})

        # Overfitting: tiny subset + big model, nothing regularises, constant LR, long.
        for arch, width, opt, lr in (("vgg", 64, "adam", 1e-3), ("simple", 96, "sgd", 0.05),
                                     ("resnet", 32, "adam", 2e-3)):
            add("overfitting", "digits", f"tiny-{arch}-{opt}",
                f"100 training images, {arch} w{width}, {opt} lr {lr}, no aug/wd/dropout, "
                "constant LR, 60 epochs",
                data={"train_subset": 100, "augment": "none"},
                model={"arch": arch, "width": width},
                optim={"optimizer": opt, "lr": lr, "weight_decay": 0.0, "epochs": 60,
                       "schedule": "none", "seed": seed})
        # Overfitting: label noise memorised.
        add("overfitting", "digits", "noise-simple-adam",
            "40% label noise, simple w64, Adam lr 1e-3, no aug/wd, constant LR, 80 epochs",
            data={"label_noise": 0.4, "augment": "none"},
            model={"arch": "simple", "width": 64},
            optim={"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "epochs": 80,
                   "schedule": "none", "seed": seed})
        add("overfitting", "digits", "noise-vgg-sgd",
            "40% label noise, vgg w32, SGD lr 0.05, no aug/wd, constant LR, 60 epochs",
            data={"label_noise": 0.4, "augment": "none"},
            model={"arch": "vgg", "width": 32},
            optim={"lr": 0.05, "weight_decay": 0.0, "epochs": 60, "schedule": "none",
                   "seed": seed})

        # Underfitting: capacity-starved or heavily regularised, trained to a plateau (cosine).
        add("underfitting", "digits", "width1",
            "simple w1, 1 stage, SGD lr 0.05, cosine, 40 epochs (capacity-starved)",
            model={"arch": "simple", "width": 1, "stages": 1},
            optim={"lr": 0.05, "epochs": 40, "schedule": "cosine", "seed": seed})
        add("underfitting", "digits", "dropout-w4",
            "simple w4, 1 stage, dropout 0.8, SGD lr 0.05, cosine, 40 epochs",
            model={"arch": "simple", "width": 4, "stages": 1, "dropout": 0.8},
            optim={"lr": 0.05, "epochs": 40, "schedule": "cosine", "seed": seed})
        add("underfitting", "digits", "dropout-w8",
            "simple w8, dropout 0.9, SGD lr 0.05, cosine, 30 epochs (over-regularised)",
            model={"arch": "simple", "width": 8, "dropout": 0.9},
            optim={"lr": 0.05, "epochs": 30, "schedule": "cosine", "seed": seed})

        # Undertrained: a sensible model with a learning rate far too low.
        for arch, opt, lr in (("simple", "sgd", 3e-4), ("vgg", "sgd", 1e-4),
                              ("resnet", "adam", 1e-5)):
            add("undertrained", "digits", f"lowlr-{arch}-{opt}",
                f"{arch} w16, {opt} lr {lr} (far too low), constant LR, 15 epochs",
                model={"arch": arch, "width": 16},
                optim={"optimizer": opt, "lr": lr, "epochs": 15, "schedule": "none",
                       "seed": seed})

        # Diverged: a learning rate far too high.
        add("diverged", "digits", "sgd-nonorm",
            "simple w32 without normalization, SGD lr 5, 15 epochs",
            model={"arch": "simple", "width": 32, "norm": "none"},
            optim={"lr": 5.0, "epochs": 15, "schedule": "none", "seed": seed})
        add("diverged", "digits", "adam-high",
            "vgg w16, Adam lr 1.0, 15 epochs",
            model={"arch": "vgg", "width": 16},
            optim={"optimizer": "adam", "lr": 1.0, "epochs": 15, "schedule": "none",
                   "seed": seed})
        add("diverged", "digits", "sgd-bn-high",
            "resnet w16, SGD lr 20, 15 epochs",
            model={"arch": "resnet", "width": 16},
            optim={"lr": 20.0, "epochs": 15, "schedule": "none", "seed": seed})

    # ---- MNIST: real 28×28 digits, downsampled to 14×14 and subsetted to fit the CPU budget
    mnist = {"image_size": 14}
    for seed in (0, 1, 2):
        expensive = seed < 2  # the slow families (thousands of images) get two seeds
        if expensive:
            add("healthy", "mnist", "simple-sgd-cosine",
                "3,000 images, simple w16, SGD lr 0.1 batch 32, cosine, 12 epochs",
                data={**mnist, "train_subset": 3000, "augment": "none"},
                model={"arch": "simple", "width": 16},
                optim={"lr": 0.1, "batch_size": 32, "epochs": 12, "schedule": "cosine",
                       "seed": seed})
            add("healthy", "mnist", "simple-adam-const",
                "2,000 images, simple w16, Adam lr 1e-3 batch 32, constant LR, crop aug, "
                "40 epochs",
                data={**mnist, "train_subset": 2000, "augment": "crop"},
                model={"arch": "simple", "width": 16},
                optim={"optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0, "batch_size": 32,
                       "epochs": 40, "schedule": "none", "seed": seed})
            add("overfitting", "mnist", "noise-simple-adam",
                "1,000 images, 50% label noise, simple w32, Adam lr 2e-3 batch 32, no aug/wd, "
                "constant LR, 60 epochs",
                data={**mnist, "train_subset": 1000, "label_noise": 0.5, "augment": "none"},
                model={"arch": "simple", "width": 32},
                optim={"optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0, "batch_size": 32,
                       "epochs": 60, "schedule": "none", "seed": seed})
        add("overfitting", "mnist", "tiny-simple-adam",
            "100 images, simple w32, Adam lr 2e-3 batch 16, no aug/wd, constant LR, 80 epochs",
            data={**mnist, "train_subset": 100, "augment": "none"},
            model={"arch": "simple", "width": 32},
            optim={"optimizer": "adam", "lr": 2e-3, "weight_decay": 0.0, "batch_size": 16,
                   "epochs": 80, "schedule": "none", "seed": seed})
        add("underfitting", "mnist", "width1",
            "1,000 images, simple w1, 1 stage, SGD lr 0.05 batch 32, cosine, 15 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "simple", "width": 1, "stages": 1},
            optim={"lr": 0.05, "batch_size": 32, "epochs": 15, "schedule": "cosine",
                   "seed": seed})
        add("underfitting", "mnist", "dropout-w4",
            "1,000 images, simple w4, 1 stage, dropout 0.8, SGD lr 0.05 batch 32, cosine, "
            "15 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "simple", "width": 4, "stages": 1, "dropout": 0.8},
            optim={"lr": 0.05, "batch_size": 32, "epochs": 15, "schedule": "cosine",
                   "seed": seed})
        add("undertrained", "mnist", "lowlr-simple-sgd",
            "1,000 images, simple w16, SGD lr 3e-4 batch 32, constant LR, 10 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "simple", "width": 16},
            optim={"lr": 3e-4, "batch_size": 32, "epochs": 10, "schedule": "none",
                   "seed": seed})
        add("undertrained", "mnist", "lowlr-vgg-adam",
            "1,000 images, vgg w8, Adam lr 1e-5 batch 32, constant LR, 10 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "vgg", "width": 8},
            optim={"optimizer": "adam", "lr": 1e-5, "batch_size": 32, "epochs": 10,
                   "schedule": "none", "seed": seed})
        add("diverged", "mnist", "sgd-nonorm",
            "1,000 images, simple w16 without normalization, SGD lr 5, 8 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "simple", "width": 16, "norm": "none"},
            optim={"lr": 5.0, "epochs": 8, "schedule": "none", "seed": seed})
        add("diverged", "mnist", "adam-high",
            "1,000 images, simple w16, Adam lr 1.0, 8 epochs",
            data={**mnist, "train_subset": 1000},
            model={"arch": "simple", "width": 16},
            optim={"optimizer": "adam", "lr": 1.0, "epochs": 8, "schedule": "none",
                   "seed": seed})
    return runs


RUNS = _runs()


def export_mnist(source: Path) -> Path:
    """The first 6,000 MNIST test images as an ImageFolder tree; returns its data root."""
    _export_mnist(source, MNIST_ROOT / MNIST_FOLDER, train=MNIST_TRAIN, val=MNIST_VAL)
    return MNIST_ROOT


def _round(value: float | None) -> float | None:
    # 5 significant digits: a loss creeping from 2.30259 to 2.30241 (an LR far too low) must
    # still read as falling.
    return None if value is None else float(f"{value:.5g}")


def generate(run: Run, mnist_root: Path | None) -> dict[str, Any]:
    from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train

    if run.dataset == "digits":
        data = DataConfig(dataset="digits", **run.data)
    else:
        assert mnist_root is not None
        data = DataConfig(dataset=f"imagefolder:{MNIST_FOLDER}", data_dir=mnist_root, **run.data)
    config = RunConfig(
        data=data,
        model=ModelConfig(**run.model),
        optim=OptimConfig(device="cpu", **run.optim),
    )
    started = time.perf_counter()
    history = train(config)
    curves = history.curves()
    return {
        "id": run.id,
        "label": run.label,
        "split": run.split,
        "dataset": run.dataset,
        "how": run.how,
        "cuttable": run.cuttable,
        "status": history.status.value,
        "seconds": round(time.perf_counter() - started, 1),
        "config": {"data": run.data, "model": run.model, "optim": run.optim},
        "curves": {
            **{k: [_round(v) for v in curves[k]] for k in
               ("train_loss", "val_loss", "train_acc", "val_acc", "lr")},
            "num_classes": curves["num_classes"],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("digits", "mnist"))
    parser.add_argument("--only", default="", help="run-id prefix")
    parser.add_argument("--mnist", type=Path, default=DEFAULT_MNIST)
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--reverse", action="store_true", help="last run first (a second process meets the first)"
    )
    parser.add_argument("--print", action="store_true", help="print the curves of each run")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # the machine is shared; one core per generator process
    selected = [
        r for r in RUNS if args.dataset in (None, r.dataset) and r.id.startswith(args.only)
    ]
    if args.reverse:
        selected.reverse()
    if args.list:
        for run in selected:
            print(run.split, run.label, run.id)
        print(len(selected), "runs")
        return
    RUNS_DIR.mkdir(exist_ok=True)
    mnist_root = export_mnist(args.mnist) if any(r.dataset == "mnist" for r in selected) else None
    for run in selected:
        path = RUNS_DIR / f"{run.id}.json"
        if path.exists() and not args.print:
            continue
        record = generate(run, mnist_root)
        path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
        print(f"{record['seconds']:6.1f}s {run.id} {record['status']}", flush=True)
        if args.print:
            for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
                print(f"  {key:10s}", record["curves"][key], flush=True)


if __name__ == "__main__":
    sys.exit(main())
