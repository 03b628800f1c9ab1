"""Packed trials against unpacked ones: trials per minute with the same number of workers.

For each configuration (dataset × network width × search) the same study is run twice
through the real product, one after the other in one process tree, so load from other
processes hits both alike: `sweepdoc serve` with ONE local CPU worker on a SQLite file and
the shipped worker settings (bench/optuna_compare.run_sweepdoc), the study submitted over
HTTP with `max_pack: 1` (every trial alone, as before issue 15) and then with `max_pack: 8`
(packs of up to 8 at every width; the default `auto` packs on a CPU only up to width 16 on
8×8 images, studies.packing, a rule these figures helped set). Both include the per-trial
overhead cuts (no curves PNG in the worker, decoded datasets cached per worker process).
Reported: wall time from submission to the last trial's end, trials per minute, epochs
trained (packed members are pruned as if the members before them had run first,
studies.pack_pruning, so both modes should train about the same epochs; they differ where an
earlier member is pruned only later), the best validation accuracy, and the packed/unpacked
ratio of trials per minute.

Searches: the demo's 5-point grid (1e-1 … 1e-5) and a 20-trial random search over
[1e-5, 1e-1] (log-uniform), the recipes of bench/optuna_compare.py (a simple CNN, Adam,
constant rate, median pruner) at widths 32 and 16. `--optuna` also runs Optuna's own
PyTorch example (bench/_optuna_baseline.py) on the learning rates the packed random search
drew, in the same order: the issue's bar is the 20-trial random search on the digits at no
more than 0.8× the example's wall time.

    .venv/bin/python bench/pack.py [--datasets digits,mnist] [--widths 32,16]
        [--searches grid,random] [--trials 20] [--epochs N] [--repeats N] [--optuna]
        [--mnist-source DIR]
    .venv/bin/python bench/pack.py --quick

`--quick` (under a minute): the digits CNN at width 32, the 5-point grid, 3 epochs, one
in-process worker on a SQLite file (no server), after one untimed warm-up study, unpacked and
packed alternately three times; its last line is the packed/unpacked trials-per-minute ratio
(medians). Writes
bench/results/pack.json (or pack_quick.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve harness lives under tests/

from bench._common import default_mnist_dir, write_result  # noqa: E402
from bench._mnist import export_mnist  # noqa: E402
from bench.optuna_compare import (  # noqa: E402
    RECIPES,
    Recipe,
    run_baseline,
    run_sweepdoc,
    study_spec,
)
from studies.packing import CPU_AUTO_CAP  # noqa: E402

# Packed: up to 8 members whatever the width and image (``auto`` packs on a CPU only up to
# width 16 on 8×8 images, studies.packing: these comparisons are what set that rule).
MODES = {"unpacked": 1, "packed": CPU_AUTO_CAP}


def _spec(recipe: Recipe, search: str, trials: int, folder: str, max_pack: Any) -> dict[str, Any]:
    spec = study_spec(recipe, search, trials, folder)
    # max_parallel as large as the CPU's auto pack, so one pack can hold 8 slots (the
    # default 4 would cap it); with one worker it changes nothing for trials alone.
    return {
        **spec,
        "name": f"{spec['name']}-pack-{max_pack}",
        "max_pack": max_pack,
        "max_parallel": CPU_AUTO_CAP,
    }


def _per_minute(trials: int, wall_s: float) -> float:
    return round(trials * 60.0 / wall_s, 2)


def run_configuration(
    recipe: Recipe,
    search: str,
    trials: int,
    data_dir: Path,
    folder: str,
    work: Path,
    repeats: int = 1,
) -> dict[str, Any]:
    """The study unpacked, then packed, through a fresh server each, *repeats* times in
    turn (load from other processes then hits both alike); each mode's run of median wall
    time is the one reported, every run is kept."""
    every: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    name = f"{recipe.dataset} w{recipe.model['width']} {search}"
    for repeat in range(repeats):
        for mode, max_pack in MODES.items():
            print(f"== {name}: {mode} ({repeat + 1}/{repeats})", flush=True)
            spec = _spec(recipe, search, trials, folder, max_pack)
            result = run_sweepdoc(spec, work / f"{mode}-{repeat}", data_dir)
            result["trials_per_min"] = _per_minute(len(result["trials"]), result["wall_s"])
            every[mode].append(result)
            print(
                f"   {result['wall_s']:.1f} s, {result['trials_per_min']:.2f} trials/min, "
                f"{result['epochs_total']} epochs",
                flush=True,
            )
    runs = {mode: _median_run(results) for mode, results in every.items()}
    return {
        "dataset": recipe.dataset,
        "width": recipe.model["width"],
        "search": search,
        "repeats": repeats,
        "runs": runs,
        "walls_s": {mode: [r["wall_s"] for r in results] for mode, results in every.items()},
        "ratio_trials_per_min": round(
            runs["packed"]["trials_per_min"] / runs["unpacked"]["trials_per_min"], 3
        ),
    }


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(results, key=lambda r: float(r["wall_s"]))
    return ordered[(len(ordered) - 1) // 2]


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'configuration':22} {'mode':9} {'wall s':>7} {'trials/min':>10} {'epochs':>7} "
        f"{'best acc':>8}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        name = f"{row['dataset']} w{row['width']} {row['search']}"
        for mode in MODES:
            r = row["runs"][mode]
            acc = f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-"
            print(
                f"{name:22} {mode:9} {r['wall_s']:7.1f} {r['trials_per_min']:10.2f} "
                f"{r['epochs_total']:7d} {acc:>8}"
            )
            name = ""
        print(f"{'':22} {'ratio':9} trials/min ×{row['ratio_trials_per_min']:.2f}")


def full(args: argparse.Namespace) -> None:
    datasets = args.datasets.split(",")
    folder = f"mnist-{args.mnist_train}-{args.mnist_val}"
    if "mnist" in datasets:
        export_mnist(
            args.mnist_source, args.data_root / folder, train=args.mnist_train, val=args.mnist_val
        )
    rows: list[dict[str, Any]] = []
    versus_optuna: dict[str, Any] | None = None
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sweepdoc-pack-") as tmp:
        for dataset in datasets:
            for width in (int(w) for w in args.widths.split(",")):
                base = RECIPES[dataset]
                recipe = replace(
                    base,
                    model={**base.model, "width": width},
                    epochs=args.epochs if args.epochs is not None else base.epochs,
                )
                for search in args.searches.split(","):
                    work = Path(tmp) / f"{dataset}-{width}-{search}"
                    row = run_configuration(
                        recipe, search, args.trials, args.data_root, folder, work, args.repeats
                    )
                    rows.append(row)
                    if args.optuna and (dataset, width, search) == ("digits", 32, "random"):
                        print("== digits w32 random: optuna example", flush=True)
                        packed = row["runs"]["packed"]
                        baseline = run_baseline(
                            recipe, packed["lrs"], args.data_root, folder, work / "optuna"
                        )
                        versus_optuna = {
                            "optuna_wall_s": baseline["wall_s"],
                            "optuna_epochs": baseline["epochs_total"],
                            "packed_wall_s": packed["wall_s"],
                            "packed_over_optuna_wall": round(
                                packed["wall_s"] / baseline["wall_s"], 3
                            ),
                            "unpacked_over_optuna_wall": round(
                                row["runs"]["unpacked"]["wall_s"] / baseline["wall_s"], 3
                            ),
                            "target": 0.8,
                        }
                    _write(args, rows, versus_optuna, time.perf_counter() - began)
    total_s = time.perf_counter() - began
    print_table(rows)
    if versus_optuna is not None:
        print(
            f"\ndigits w32 random search vs Optuna's example: packed wall "
            f"×{versus_optuna['packed_over_optuna_wall']:.2f}, unpacked "
            f"×{versus_optuna['unpacked_over_optuna_wall']:.2f} (target ≤ 0.8)"
        )
    print(f"\nwhole benchmark: {total_s:.0f} s")


def _write(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    versus_optuna: dict[str, Any] | None,
    total_s: float,
) -> None:
    """The results so far (after every configuration: a long run stopped early keeps them)."""
    write_result(
        "pack",
        {
            "trials_random": args.trials,
            "epochs_override": args.epochs,
            "configurations": rows,
            "versus_optuna": versus_optuna,
            "total_s": round(total_s, 1),
        },
        out=args.out,
    )


# --- --quick: one in-process worker, no server --------------------------------------------


def grid_in_process(home: Path, recipe: Recipe, max_pack: Any) -> tuple[Any, Any, Any]:
    """The 5-point grid study of *recipe* submitted to a new SQLite file under *home* (the
    database, the study) and the options of one in-process worker that trains it and exits
    when the queue is empty (no server, no poll wait worth the name)."""
    from studies import store
    from studies.db import Database
    from studies.schema_setup import create_schema
    from studies.spec import parse_spec
    from studies.worker import WorkerOptions

    home.mkdir()
    db = Database(f"sqlite:///{home / 'sweepdoc.db'}")
    create_schema(db)
    spec = parse_spec(_spec(recipe, "grid", 5, "", max_pack))
    study = store.submit_study(db, spec, artifacts_dir=home / "artifacts")
    options = WorkerOptions(
        database_url=db.url,
        data_dir=home,
        artifacts_dir=home / "artifacts",
        exit_when_idle=True,
        poll_interval_s=0.05,
    )
    return db, study, options


def _quick_run(tmp: Path, index: int, max_pack: Any, epochs: int) -> float:
    """One 5-point grid study through a real worker in this process; trials per minute from
    the first claim to the last finish (as stored)."""
    from studies import store
    from studies.worker import run_worker

    db, study, options = grid_in_process(
        tmp / f"run-{index}", replace(RECIPES["digits"], epochs=epochs), max_pack
    )
    run_worker(options)
    trials = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
    db.dispose()
    starts = [t.claimed_at for t in trials if t.claimed_at is not None]
    ends = [t.finished_at for t in trials if t.finished_at is not None]
    if len(ends) != len(trials):
        raise SystemExit(f"--quick: a trial did not finish: {[t.state for t in trials]}")
    return _per_minute(len(trials), (max(ends) - min(starts)).total_seconds())


def quick(args: argparse.Namespace) -> None:
    from studies.optuna_bridge import close_storages
    from trainer import warm_up

    warm_up()  # torch's one-off import cost, outside both timings
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="sweepdoc-pack-quick-") as tmp:
        # Untimed: the first trial in a process pays one-off costs (the dataset's decoding,
        # the dashboard note's import) that whichever mode ran first would carry.
        _quick_run(Path(tmp), -1, 1, 1)
        close_storages()
        for repeat in range(3):
            for mode, max_pack in MODES.items():
                index = repeat * len(MODES) + list(MODES).index(mode)
                rates[mode].append(_quick_run(Path(tmp), index, max_pack, args.quick_epochs))
                close_storages()
                print(f"repeat {repeat + 1} {mode}: {rates[mode][-1]:.1f} trials/min", flush=True)
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    ratio = medians["packed"] / medians["unpacked"]
    write_result(
        "pack_quick",
        {"epochs": args.quick_epochs, "trials_per_min": rates, "ratio": round(ratio, 3)},
        out=args.out,
    )
    print(f"{ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits w32 grid only, < 1 min")
    parser.add_argument("--quick-epochs", type=int, default=3)
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--widths", default="32,16")
    parser.add_argument("--searches", default="grid,random")
    parser.add_argument("--trials", type=int, default=20, help="random search trials")
    parser.add_argument("--epochs", type=int, default=None, help="override both recipes")
    parser.add_argument("--optuna", action="store_true", help="also run Optuna's example")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode, in turn")
    parser.add_argument("--mnist-train", type=int, default=5000)
    parser.add_argument("--mnist-val", type=int, default=1000)
    parser.add_argument(
        "--mnist-source",
        type=Path,
        default=default_mnist_dir(),
        help="MNIST 10k IDX folder (default: $SWEEPDOC_BENCH_MNIST, else ../shared/data/mnist-10k)",
    )
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/sweepdoc-bench-data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        quick(args)
    else:
        full(args)


if __name__ == "__main__":
    main()
