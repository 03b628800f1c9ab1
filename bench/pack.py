"""Packed trials against unpacked ones: trials per minute with the same number of workers.

For each configuration (dataset × network width × search) the same study is run three
times through the real product, one after the other in one process tree, so load from
other processes hits all three alike: `sweepdoc serve` with ONE local CPU worker on a SQLite
file and the shipped worker settings (bench/optuna_compare.run_sweepdoc), the study
submitted over HTTP
- unpacked at --before (default 3255cce, bench/_before.py says why): that commit's tree,
  extracted to a temporary folder and served from the same virtualenv, with the spec less
  the fields it does not know (`max_pack`): every trial alone, none of issue 15's changes;
- unpacked now, `max_pack: 1`: every trial alone on today's code, issue 15's per-trial and
  per-epoch cuts included (no curves PNG in the worker, decoded datasets cached per worker
  process, fast idle claim, cheaper pruning reads, batched epoch writes, channels-last,
  the allocator setting);
- packed now, `max_pack: 8` (packs of up to 8 at every width; the default `auto` packs on a
  CPU only up to width 16 on 8×8 images, studies.packing, a rule these figures helped set).
Two ratios of trials per minute: packed / unpacked now (the same code on both sides: what
fusing alone buys), and packed / unpacked before — the issue's: its done-when compares
"packed against unpacked ..., overhead cuts included ... so the overhead cuts count", which
only a baseline without the cuts can show. Reported beside them: wall time from submission
to the last trial's end, epochs trained (packed members are pruned as if the members before
them had run first, studies.pack_pruning, so the modes should train about the same epochs;
they differ where an earlier member is pruned only later), wall time outside the epochs per
trial (the two unpacked sides: what the cuts took off), the best validation accuracy.

Searches: the demo's 5-point grid (1e-1 … 1e-5) and a 20-trial random search over
[1e-5, 1e-1] (log-uniform), the recipes of bench/optuna_compare.py (a simple CNN, Adam,
constant rate, median pruner) at widths 32 and 16. `--optuna` also runs Optuna's own
PyTorch example (bench/_optuna_baseline.py) on the learning rates the packed random search
drew, in the same order: the issue's bar is the 20-trial random search on the digits at no
more than 0.8× the example's wall time.

    .venv/bin/python bench/pack.py [--datasets digits,mnist] [--widths 32,16]
        [--searches grid,random] [--trials 20] [--epochs N] [--repeats N] [--optuna]
        [--before REV|none] [--mnist-source DIR]
    .venv/bin/python bench/pack.py --quick [--before REV|none]

`--quick` (under a minute): the digits CNN at width 32, the 5-point grid, 3 epochs, one
in-process worker on a SQLite file (no server, bench/_grid_worker.py), after one untimed
warm-up study: first three studies of --before's code in one interpreter of its own, then
today's unpacked and packed alternately three times. It prints both ratios of the medians;
its LAST line is the issue's, packed / unpacked before (with `--before none`, the same-code
ratio). Writes bench/results/pack.json (or pack_quick.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve harness lives under tests/

from bench._before import (  # noqa: E402
    DEFAULT_BEFORE,
    Tree,
    checked_out,
    quick_rates,
    running,
    spec_for_tree,
)
from bench._common import write_result  # noqa: E402
from bench._grid_worker import submit_in_process, trials_per_minute  # noqa: E402
from bench.optuna_compare import (  # noqa: E402
    RECIPES,
    Recipe,
    add_recipe_options,
    export_mnist_for,
    run_baseline,
    run_sweepdoc,
    study_spec,
)
from studies.packing import CPU_AUTO_CAP  # noqa: E402

# Packed: up to 8 members whatever the width and image (``auto`` packs on a CPU only up to
# width 16 on 8×8 images, studies.packing: these comparisons are what set that rule).
MODES = {"unpacked": 1, "packed": CPU_AUTO_CAP}
# The third side: unpacked on the --before tree, run first in every repeat.
BEFORE = "unpacked_before"


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


def _ratio(over: dict[str, Any], under: dict[str, Any]) -> float:
    return round(float(over["trials_per_min"]) / float(under["trials_per_min"]), 3)


def _outside_per_trial(run: dict[str, Any]) -> float:
    """Wall seconds per trial outside its epochs' training and evaluation (a trial alone:
    a packed member's epoch seconds are its pack's, so its sum overlaps its mates')."""
    return round(float(run["outside_epochs_s"]) / len(run["trials"]), 3)


def run_configuration(
    recipe: Recipe,
    search: str,
    trials: int,
    data_dir: Path,
    folder: str,
    work: Path,
    repeats: int = 1,
    before: Tree | None = None,
) -> dict[str, Any]:
    """The study unpacked at *before* (if given), unpacked now, then packed now, through a
    fresh server each, *repeats* times in turn (load from other processes then hits all
    alike); each side's run of median wall time is the one reported, every run is kept."""
    sides = ([BEFORE] if before is not None else []) + list(MODES)
    every: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    name = f"{recipe.dataset} w{recipe.model['width']} {search}"
    for repeat in range(repeats):
        for side in sides:
            print(f"== {name}: {side} ({repeat + 1}/{repeats})", flush=True)
            home = work / f"{side}-{repeat}"
            if side == BEFORE:
                assert before is not None
                spec = spec_for_tree(_spec(recipe, search, trials, folder, 1))
                with running(before):
                    result = run_sweepdoc(
                        {**spec, "name": f"{spec['name']}-before"}, home, data_dir
                    )
            else:
                spec = _spec(recipe, search, trials, folder, MODES[side])
                result = run_sweepdoc(spec, home, data_dir)
            result["trials_per_min"] = _per_minute(len(result["trials"]), result["wall_s"])
            every[side].append(result)
            print(
                f"   {result['wall_s']:.1f} s, {result['trials_per_min']:.2f} trials/min, "
                f"{result['epochs_total']} epochs",
                flush=True,
            )
    runs = {side: _median_run(results) for side, results in every.items()}
    row: dict[str, Any] = {
        "dataset": recipe.dataset,
        "width": recipe.model["width"],
        "search": search,
        "repeats": repeats,
        "runs": runs,
        "walls_s": {side: [r["wall_s"] for r in results] for side, results in every.items()},
        "trials_per_min": {
            side: [r["trials_per_min"] for r in results] for side, results in every.items()
        },
        "outside_per_trial_s": {
            side: _outside_per_trial(runs[side]) for side in sides if side != "packed"
        },
        # The same code on both sides: what fusing alone buys.
        "ratio_trials_per_min": _ratio(runs["packed"], runs["unpacked"]),
    }
    if before is not None:
        # The issue's: packed with the cuts against every trial alone as before issue 15.
        row["ratio_over_before"] = _ratio(runs["packed"], runs[BEFORE])
        # The cuts alone: today's trials alone against the same trials before.
        row["unpacked_over_before"] = _ratio(runs["unpacked"], runs[BEFORE])
    return row


def _median_run(results: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(results, key=lambda r: float(r["wall_s"]))
    return ordered[(len(ordered) - 1) // 2]


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'configuration':22} {'side':15} {'wall s':>7} {'trials/min':>10} {'epochs':>7} "
        f"{'out s/trial':>11} {'best acc':>8}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        name = f"{row['dataset']} w{row['width']} {row['search']}"
        for side, r in row["runs"].items():
            acc = f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-"
            outside = row["outside_per_trial_s"].get(side)
            out = f"{outside:.3f}" if outside is not None else "-"
            print(
                f"{name:22} {side:15} {r['wall_s']:7.1f} {r['trials_per_min']:10.2f} "
                f"{r['epochs_total']:7d} {out:>11} {acc:>8}"
            )
            name = ""
        ratios = f"packed/unpacked ×{row['ratio_trials_per_min']:.2f}"
        if "ratio_over_before" in row:
            ratios += (
                f", packed/unpacked before ×{row['ratio_over_before']:.2f}"
                f", unpacked now/before ×{row['unpacked_over_before']:.2f}"
            )
        print(f"{'':22} {'trials/min':15} {ratios}")


def full(args: argparse.Namespace, before: Tree | None) -> None:
    datasets = args.datasets.split(",")
    folder = export_mnist_for(args)
    rows: list[dict[str, Any]] = []
    versus_optuna: dict[str, Any] | None = None
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sweepdoc-pack-") as tmp:
        for dataset in datasets:
            for width in (int(w) for w in args.widths.split(",")):
                recipe = RECIPES[dataset].at(width=width, epochs=args.epochs)
                for search in args.searches.split(","):
                    work = Path(tmp) / f"{dataset}-{width}-{search}"
                    row = run_configuration(
                        recipe,
                        search,
                        args.trials,
                        args.data_root,
                        folder,
                        work,
                        args.repeats,
                        before,
                    )
                    rows.append(row)
                    if args.optuna and (dataset, width, search) == ("digits", 32, "random"):
                        print("== digits w32 random: optuna example", flush=True)
                        versus_optuna = _versus_optuna(row, recipe, args.data_root, folder, work)
                    _write(args, rows, versus_optuna, before, time.perf_counter() - began)
    total_s = time.perf_counter() - began
    print_table(rows)
    if versus_optuna is not None:
        print(
            "\ndigits w32 random search vs Optuna's example: wall "
            + ", ".join(
                f"{side} ×{versus_optuna[f'{side}_over_optuna_wall']:.2f}" for side in row["runs"]
            )
            + " (target ≤ 0.8)"
        )
    print(f"\nwhole benchmark: {total_s:.0f} s")


def _versus_optuna(
    row: dict[str, Any], recipe: Recipe, data_dir: Path, folder: str, work: Path
) -> dict[str, Any]:
    """Optuna's example on the rates the packed random search drew, in its order; every
    side's wall time over the example's."""
    packed = row["runs"]["packed"]
    baseline = run_baseline(recipe, packed["lrs"], data_dir, folder, work / "optuna")
    return {
        "optuna_wall_s": baseline["wall_s"],
        "optuna_epochs": baseline["epochs_total"],
        "packed_wall_s": packed["wall_s"],
        **{
            f"{side}_over_optuna_wall": round(r["wall_s"] / baseline["wall_s"], 3)
            for side, r in row["runs"].items()
        },
        "target": 0.8,
    }


def _write(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    versus_optuna: dict[str, Any] | None,
    before: Tree | None,
    total_s: float,
) -> None:
    """The results so far (after every configuration: a long run stopped early keeps them)."""
    write_result(
        "pack",
        {
            "trials_random": args.trials,
            "epochs_override": args.epochs,
            "before": before.record() if before is not None else None,
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
    when the queue is empty (bench/_grid_worker.submit_in_process)."""
    return submit_in_process(home, _spec(recipe, "grid", 5, "", max_pack))


def _quick_spec(epochs: int, max_pack: Any) -> dict[str, Any]:
    return _spec(RECIPES["digits"].at(epochs=epochs), "grid", 5, "", max_pack)


def quick(args: argparse.Namespace, before: Tree | None) -> None:
    from trainer import warm_up

    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="sweepdoc-pack-quick-") as tmp:
        if before is not None:
            # In an interpreter of its own (its own untimed warm-up study first), before
            # today's runs: one process cannot import two trees' packages.
            rates[BEFORE] = quick_rates(
                before,
                _quick_spec(args.quick_epochs, 1),
                _quick_spec(1, 1),
                3,
                Path(tmp) / "before",
            )
            print(
                f"before ({before.rev}): {', '.join(f'{r:.1f}' for r in rates[BEFORE])} trials/min",
                flush=True,
            )
        warm_up()  # torch's one-off import cost, outside both timings
        # Untimed: the first trial in a process pays one-off costs (the dataset's decoding,
        # the dashboard note's import) that whichever mode ran first would carry.
        trials_per_minute(Path(tmp) / "warm-up", _quick_spec(1, 1))
        rates.update({mode: [] for mode in MODES})
        for repeat in range(3):
            for mode, max_pack in MODES.items():
                home = Path(tmp) / f"run-{repeat}-{mode}"
                rates[mode].append(
                    trials_per_minute(home, _quick_spec(args.quick_epochs, max_pack))
                )
                print(f"repeat {repeat + 1} {mode}: {rates[mode][-1]:.1f} trials/min", flush=True)
    medians = {side: statistics.median(values) for side, values in rates.items()}
    ratio = medians["packed"] / medians["unpacked"]
    result: dict[str, Any] = {
        "epochs": args.quick_epochs,
        "before": before.record() if before is not None else None,
        "trials_per_min": rates,
        "ratio": round(ratio, 3),
    }
    print(f"packed / unpacked, the same code: {ratio:.2f}")
    if before is not None:
        result["ratio_over_before"] = round(medians["packed"] / medians[BEFORE], 3)
        print(
            f"packed / unpacked before ({before.rev}), the issue's (overhead cuts included): "
            f"{result['ratio_over_before']:.2f}"
        )
    write_result("pack_quick", result, out=args.out)
    print(f"{result.get('ratio_over_before', ratio):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits w32 grid only, < 1 min")
    parser.add_argument("--quick-epochs", type=int, default=3)
    add_recipe_options(parser)
    parser.add_argument("--widths", default="32,16")
    parser.add_argument("--optuna", action="store_true", help="also run Optuna's example")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each side, in turn")
    parser.add_argument(
        "--before",
        default=DEFAULT_BEFORE,
        help="the commit whose unpacked runs are the third side ('none': skip it; default: "
        f"{DEFAULT_BEFORE}, the last without issue 15's code in a trial alone, bench/_before.py)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    run = quick if args.quick else full
    if args.before == "none":
        run(args, None)
        return
    with checked_out(args.before) as before:
        run(args, before)


if __name__ == "__main__":
    main()
