"""The first wave of the labeled set (107 runs): each label made true by construction.

A sensible recipe → healthy; a tiny training subset and a big unregularised model, or
memorised label noise → overfitting; a capacity-starved or heavily regularised model trained
to a plateau → underfitting; a learning rate far too low → undertrained; a learning rate far
too high → diverged. The bundled 8×8 digits and the real 28×28 MNIST test images (the
``mnist6k`` tree, downsampled to 14×14), several architectures, optimizers and seeds.
Its split is the hash of each run id (recipe.py); the ids and recipes never change.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # recipe.py beside this file

from recipe import Run  # noqa: E402


def first_wave() -> list[Run]:
    runs: list[Run] = []

    def add(label: str, dataset: str, name: str, how: str, **parts: dict[str, Any]) -> None:
        seed = parts.get("optim", {}).get("seed", 0)
        runs.append(Run(f"{dataset}-{label}-{name}-s{seed}", label, dataset, how,
                        data=parts.get("data", {}), model=parts.get("model", {}),
                        optim=parts.get("optim", {})))

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
