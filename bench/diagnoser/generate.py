"""Generate the diagnoser's labeled set: REAL training runs whose label is true by construction.

Each run trains a real CNN with the project's trainer under conditions that make its label
true (docs/diagnoser.md, "Accuracy, measured on real training runs"). Twenty-one waves, each a data
file read by wavefile.py: waves/wave1.toml (107 runs: the digits and the first-wave MNIST tree,
constant LR or cosine), wave2.toml (schedules, warm-up, fine-tuning, 2/5/40-class tasks and a
label-noise ceiling from tasks.py, runs of 100–300 epochs, the shapes the first diagnoser
missed), wave3.toml (new tasks, batch sizes, optimizers, schedules and fine-tuning variants;
held out until wave 4), wave4.toml (recipes new to all three; held out until wave 5),
wave5.toml (recipes new to all four; held out until wave 6), wave6.toml (recipes new to all
five; held out until wave 7), wave7.toml (recipes new to all six; held out until wave 8),
wave8.toml (recipes new to all seven; held out until wave 9), wave9.toml (recipes new to all
eight; held out until wave 10), wave10.toml (recipes new to all nine; held out until wave 11),
wave11.toml (recipes new to all ten; held out until wave 12), wave12.toml (recipes new to
all eleven; held out until wave 13), wave13.toml (recipes new to all twelve; held out
until wave 14), wave14.toml (recipes new to all thirteen; held out until wave 15),
wave15.toml (recipes new to all fourteen; held out until wave 16), wave16.toml (recipes new
to all fifteen; held out until wave 17), wave17.toml (recipes new to all sixteen; held out until
wave 18), wave18.toml (recipes new to all seventeen; held out until wave 19), wave19.toml (recipes
new to all eighteen; held out until wave 20), wave20.toml (recipes new to all nineteen; held out
until wave 21) and wave21.toml (the held-out half: recipes new to all twenty).
Each family's seeded runs: family.py. How the set is split (by wave): recipe.py. What is true
of a cut of a run: dataset.py.

Every run is written to ``runs/<id>.json`` (compact, floats rounded to 5 significant
digits) with the label, its family, how it was made, the config and its split. The script is
resumable: a run whose JSON exists is skipped. Fine-tuning runs first train their checkpoint
(waves/checkpoints.toml) once, under the data root.

    .venv/bin/python bench/diagnoser/generate.py [--wave N] [--dataset digits|mnist]
        [--only ID-PREFIX] [--mnist DIR] [--list] [--reverse] [--runs-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # run from anywhere: import the repo's packages
sys.path.insert(0, str(HERE))  # and the modules beside this file

from recipe import Run  # noqa: E402
from tasks import DATA_ROOT, TASKS, export_task  # noqa: E402
from wavefile import load_checkpoints, load_waves, wave_numbers  # noqa: E402

from bench._common import default_mnist_dir  # noqa: E402
from bench._mnist import export_mnist  # noqa: E402

RUNS_DIR = HERE / "runs"
MNIST_FOLDER = "mnist6k"  # the first wave's MNIST tree under DATA_ROOT
MNIST_TRAIN, MNIST_VAL = 5000, 1000  # images written to train/ and val/ of that tree
CHECKPOINTS = DATA_ROOT / "checkpoints"
CURVE_KEYS = ("train_loss", "val_loss", "train_acc", "val_acc", "lr")

RUNS = load_waves()
PRETRAINED = load_checkpoints()
_duplicates = {r.id for r in RUNS if sum(o.id == r.id for o in RUNS) > 1}
assert not _duplicates, f"run ids must be unique, repeated: {sorted(_duplicates)}"


def _round(value: float | None) -> float | None:
    # 5 significant digits: a loss creeping from 2.30259 to 2.30241 (an LR far too low) must
    # still read as falling.
    return None if value is None else float(f"{value:.5g}")


def _config(run: Run, mnist_source: Path, init_from: Path | None) -> Any:
    from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig

    if run.task is not None:
        data = DataConfig(dataset=f"imagefolder:{run.task}",
                          data_dir=export_task(TASKS[run.task], mnist_source), **run.data)
    elif run.dataset == "mnist":
        export_mnist(mnist_source, DATA_ROOT / MNIST_FOLDER, train=MNIST_TRAIN, val=MNIST_VAL)
        data = DataConfig(dataset=f"imagefolder:{MNIST_FOLDER}", data_dir=DATA_ROOT, **run.data)
    else:
        data = DataConfig(dataset="digits", **run.data)
    return RunConfig(
        data=data,
        model=ModelConfig(**run.model),
        optim=OptimConfig(device="cpu", init_from=init_from, **run.optim),
    )


def checkpoint(name: str, mnist_source: Path) -> Path:
    """The pretrained checkpoint *name* (waves/checkpoints.toml), trained on first use."""
    from trainer import train

    path = CHECKPOINTS / f"{name}.pt"
    if not path.is_file():
        started = time.perf_counter()
        train(_config(PRETRAINED[name], mnist_source, None), checkpoint_path=path)
        print(f"{time.perf_counter() - started:6.1f}s checkpoint {name}", flush=True)
    return path


def generate(run: Run, mnist_source: Path) -> dict[str, Any]:
    from trainer import train

    init_from = checkpoint(run.pretrained, mnist_source) if run.pretrained else None
    config = _config(run, mnist_source, init_from)
    started = time.perf_counter()
    history = train(config)
    curves = history.curves()
    record: dict[str, Any] = {
        "id": run.id,
        "family": run.family,
        "wave": run.wave,
        "label": run.label,
        "split": run.split.value,
        "split_by": "wave",
        **({} if run.heldout_until_wave is None else
           {"heldout_until_wave": run.heldout_until_wave}),
        "dataset": run.dataset,
        "task": run.task,
        "how": run.how,
        "status": history.status.value,
        "seconds": round(time.perf_counter() - started, 1),
        "config": {"data": run.data, "model": run.model, "optim": run.optim,
                   "pretrained": run.pretrained},
        "curves": {
            **{key: [_round(v) for v in curves[key]] for key in CURVE_KEYS},
            "num_classes": curves["num_classes"],
        },
    }
    if run.sum_view:
        # What a loop with reduction="sum" logs: each batch's summed loss, i.e. the mean
        # loss times the batch size (dataset.py shows the run that way too).
        record["sum_reduced_scale"] = config.optim.batch_size
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wave", type=int, choices=wave_numbers())
    parser.add_argument("--dataset", choices=("digits", "mnist"))
    parser.add_argument("--only", default="", help="run-id prefix")
    parser.add_argument("--mnist", type=Path, default=default_mnist_dir(),
                        help="MNIST 10k IDX folder (default: bench._common.default_mnist_dir())")
    parser.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--reverse", action="store_true", help="last run first (a second process meets the first)"
    )
    parser.add_argument("--print", action="store_true", help="print the curves of each run")
    args = parser.parse_args()

    selected = [
        r for r in RUNS
        if args.wave in (None, r.wave) and args.dataset in (None, r.dataset)
        and r.id.startswith(args.only)
    ]
    if args.reverse:
        selected.reverse()
    if args.list:
        for run in selected:
            print(run.split, run.label, run.id)
        print(len(selected), "runs")
        return

    import torch

    torch.set_num_threads(1)  # the machine is shared; one core per generator process
    args.runs_dir.mkdir(exist_ok=True)
    for run in selected:
        path = args.runs_dir / f"{run.id}.json"
        if path.exists() and not args.print:
            continue
        record = generate(run, args.mnist)
        path.write_text(json.dumps(record, separators=(",", ":")) + "\n")
        print(f"{record['seconds']:6.1f}s {run.id} {record['status']}", flush=True)
        if args.print:
            for key in ("train_loss", "val_loss", "train_acc", "val_acc"):
                print(f"  {key:10s}", record["curves"][key], flush=True)


if __name__ == "__main__":
    main()
