"""sweepdoc against the way Optuna's own PyTorch example does a learning-rate search.

Four configurations: {digits, real MNIST images} × {grid of the seed's five learning rates
1e-1 … 1e-5, random search of 20 trials over lr in [1e-5, 1e-1] log-uniform}. For each, two
systems train the same recipe one after the other:

(a) sweepdoc, the real product: `sweepdoc serve` with ONE local CPU worker on a SQLite file
    in a fresh SWEEPDOC_HOME, with the shipped worker settings (poll interval, heartbeat);
    the study (`pruner: median`, plus the live divergence check that is always on) is
    submitted with POST /v1/studies, and epochs, accuracies and stop reasons are read back
    from GET /v1/studies/{id}/trials and /v1/trials/{id}.
(b) the baseline, bench/_optuna_baseline.py in a fresh interpreter: `optuna.create_study(
    direction="maximize")` (its default MedianPruner), a DataLoader training loop,
    `trial.report` / `trial.should_prune`, `study.optimize`, in-memory storage, no diagnosis
    (optuna-examples' pytorch/pytorch_simple.py).

Same network (trainer._models.build_model from one ModelConfig, the same seed), optimizer
(Adam, no weight decay), constant learning rate, batch size, epochs, train/val split,
per-channel normalisation and data order; no augmentation (the example has none). The
objective of both is the best validation accuracy so far. sweepdoc's random sampler is
unseeded, so sweepdoc runs first and the baseline is given the learning rates sweepdoc drew,
in the order sweepdoc ran them (enqueue_trial, then suggest_float over the same range): both
train the same points. The grid runs largest first in both. A trial that both systems run to
the same epoch has the same curve (up to float noise), so what tells them apart is which
runs each stops, and when, and what each costs per epoch and per trial.

Left as each system ships them: the pruners (sweepdoc's `median` is MedianPruner(
n_startup_trials=2, n_warmup_steps=2); the example's default MedianPruner() waits for 5
finished trials, so it never prunes a 5-point grid) and the data path (sweepdoc holds the
decoded images in memory; the example's DataLoader decodes and transforms every MNIST PNG
every epoch, so its seconds per epoch are higher: read the epochs ratio apart from the wall
ratio).

Per system: wall time (submission to the last trial's end; sweepdoc's server start-up and
the baseline's interpreter start-up apart), best validation accuracy (best epoch of any
trial) and its learning rate, epochs trained (sum over trials), trials stopped early and
why, mean seconds per epoch and per-trial overheads; then the ratios sweepdoc/baseline of
wall time and epochs and the accuracy difference. Writes bench/results/optuna_compare.json.

MNIST: the 10k-image split in --mnist-source (default: $SWEEPDOC_BENCH_MNIST, else
../shared/data/mnist-10k next to the checkout; see bench/_common.default_mnist_dir), exported
once (bench/_mnist.py) as train/ (5,000 images) and val/ (1,000) under --data-root; 28×28, as
they come.

    .venv/bin/python bench/optuna_compare.py [--datasets digits,mnist] [--searches grid,random]
        [--trials 20] [--epochs N (both datasets)] [--mnist-source DIR] [--out PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve harness lives under tests/

from bench._common import (  # noqa: E402
    RESULTS,
    default_mnist_dir,
    shipped_worker_settings,
    write_result,
)
from bench._mnist import export_mnist  # noqa: E402
from tests.service.serve_process import ServeProcess, serving  # noqa: E402

BASELINE = ROOT / "bench" / "_optuna_baseline.py"
LR_LOW, LR_HIGH = 1e-5, 1e-1


@dataclass(frozen=True)
class Recipe:
    """One dataset's training recipe, shared by both systems."""

    dataset: str  # digits | mnist
    model: dict[str, Any]
    epochs: int
    batch_size: int = 64
    seed: int = 0
    val_fraction: float = 0.2  # digits only: MNIST comes with its own val/ folder
    split_seed: int = 0

    def at(self, *, width: int | None = None, epochs: int | None = None) -> Recipe:
        """This recipe with another network width and number of epochs (None: its own)."""
        return replace(
            self,
            model=self.model if width is None else {**self.model, "width": width},
            epochs=self.epochs if epochs is None else epochs,
        )


# What a user would run: a small CNN trained to convergence with Adam at a constant rate.
# Sized so the whole benchmark (4 configurations, both systems) takes ~20 min on 2 cores.
RECIPES = {
    "digits": Recipe("digits", {"arch": "simple", "width": 32, "stages": 2}, epochs=15),
    "mnist": Recipe("mnist", {"arch": "simple", "width": 16, "stages": 2}, epochs=10),
}


@dataclass
class TrialResult:
    """One trial of either system, in the shape both are reported in."""

    lr: float
    state: str  # complete | pruned | failed
    val_acc: list[float | None]  # per epoch (None: non-finite)
    epoch_seconds: list[float]
    stopped_because: str | None = None  # None: trained every epoch
    stop_detail: str | None = None
    last_val_acc: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.val_acc)

    @property
    def best_val_acc(self) -> float | None:
        finite = [a for a in self.val_acc if a is not None]
        return max(finite) if finite else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "lr": self.lr,
            "state": self.state,
            "epochs": self.epochs,
            "best_val_acc": self.best_val_acc,
            "last_val_acc": self.last_val_acc,
            "stopped_because": self.stopped_because,
            "stop_detail": self.stop_detail,
            "val_acc": [None if a is None else round(a, 4) for a in self.val_acc],
            "epoch_seconds": [round(s, 3) for s in self.epoch_seconds],
            **self.extra,
        }


def summarise(trials: list[TrialResult], wall_s: float, **extra: Any) -> dict[str, Any]:
    """The per-system numbers of one configuration."""
    scored = [t for t in trials if t.best_val_acc is not None]
    best = max(scored, key=lambda t: t.best_val_acc or 0.0) if scored else None
    seconds = [s for t in trials for s in t.epoch_seconds]
    return {
        "wall_s": round(wall_s, 2),
        **extra,
        "best_val_acc": best.best_val_acc if best else None,
        "best_lr": best.lr if best else None,
        "epochs_total": sum(t.epochs for t in trials),
        "epochs_max": len(trials) * max((t.epochs for t in trials), default=0),
        "stopped_early": dict(Counter(t.stopped_because for t in trials if t.stopped_because)),
        "mean_epoch_s": round(statistics.fmean(seconds), 3) if seconds else None,
        # Wall time not spent in an epoch: start of each trial (model, data), the end of
        # each (sweepdoc: diagnosis, plot, database), the gaps between trials.
        "outside_epochs_s": round(wall_s - sum(seconds), 2),
        "lrs": [t.lr for t in trials],
        "trials": [t.as_dict() for t in trials],
    }


# --- (a) sweepdoc ---------------------------------------------------------------------------


def study_spec(recipe: Recipe, search: str, trials: int, mnist_folder: str) -> dict[str, Any]:
    """The study file a user would write for *recipe*: median pruner, Adam, constant LR."""
    sampler: dict[str, Any] = (
        {"sampler": "grid"}
        if search == "grid"
        else {"sampler": "random", "n_trials": trials, "lr_low": LR_LOW, "lr_high": LR_HIGH}
    )
    data: dict[str, Any] = {"augment": "none", "split_seed": recipe.split_seed}
    if recipe.dataset == "digits":
        data["val_fraction"] = recipe.val_fraction
    return {
        "name": f"bench-{recipe.dataset}-{search}",
        "dataset": "digits" if recipe.dataset == "digits" else f"imagefolder:{mnist_folder}",
        "data": data,
        "model": recipe.model,
        "train": {
            "epochs": recipe.epochs,
            "batch_size": recipe.batch_size,
            "optimizer": "adam",
            "weight_decay": 0.0,
            "schedule": "none",
            "seed": recipe.seed,
        },
        "search": sampler,
        "pruner": "median",
    }


def _when(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stop_kind(state: str, reason: str | None) -> str | None:
    """Why a sweepdoc trial ended before its last epoch, in one word."""
    if state == "complete" or not reason:
        return None if state == "complete" else state
    if "divergence check" in reason:
        return "diverged (live check)"
    if "non-finite" in reason:
        return "diverged (non-finite loss)"
    if "pruner" in reason:
        return "pruned"
    return reason


def _sweepdoc_trial(detail: dict[str, Any]) -> TrialResult:
    epochs = detail["epochs"]
    # In-trial time that is not an epoch: data loading, the diagnosis, the plot, database writes.
    trained_s = sum(e["seconds"] or 0.0 for e in epochs)
    return TrialResult(
        lr=float(detail["params"]["lr"]),
        state=detail["state"],
        val_acc=[e["val_acc"] for e in epochs],
        epoch_seconds=[e["seconds"] or 0.0 for e in epochs],
        stopped_because=_stop_kind(detail["state"], detail["stop_reason"]),
        stop_detail=detail["stop_reason"],
        last_val_acc=epochs[-1]["val_acc"] if epochs else None,
        extra={
            "label": detail["label"],
            "claimed_at": detail["claimed_at"],
            "finished_at": detail["finished_at"],
            "trial_s": detail["duration_s"],
            "outside_epochs_s": round((detail["duration_s"] or 0.0) - trained_s, 3),
        },
    )


def run_sweepdoc(spec: dict[str, Any], home: Path, data_dir: Path) -> dict[str, Any]:
    """Serve, submit *spec*, wait for the end, read every trial back; the summary."""
    server = ServeProcess(  # the shipped worker settings: fast test polling would flatter us
        home,
        database_url=f"sqlite:///{home / 'sweepdoc.db'}",
        workers=1,
        env_overrides={"SWEEPDOC_DATA_DIR": str(data_dir)},
        fast_workers=False,
    )
    began = time.perf_counter()
    with serving(server, workers=1):
        http_s = time.perf_counter() - began
        server.wait_for_workers(1)  # the worker has imported torch and announced itself
        ready_s = time.perf_counter() - began
        submitted = datetime.now(UTC)
        response = server.http.post("/v1/studies", json=spec)
        if response.status_code != 201:
            raise SystemExit(f"POST /v1/studies: {response.status_code} {response.text}")
        study = server.wait_for_study(response.json()["id"], timeout_s=7200)
        seen_s = (datetime.now(UTC) - submitted).total_seconds()
        rows = server.get(f"/v1/studies/{study['id']}/trials")["data"]
        details = [server.get(row["url"]) for row in rows]
        server.stop()
    if study["status"] != "completed":
        raise SystemExit(f"sweepdoc study ended {study['status']}:\n{server.log()}")
    details.sort(key=lambda d: _when(d["claimed_at"]))  # the order the worker ran them
    trials = [_sweepdoc_trial(d) for d in details]
    claims = [_when(d["claimed_at"]) for d in details]
    ends = [_when(d["finished_at"]) for d in details]
    return summarise(
        trials,
        (max(ends) - submitted).total_seconds(),
        startup_s=round(ready_s, 2),
        startup_http_s=round(http_s, 2),
        completion_seen_s=round(seen_s, 2),
        first_claim_s=round((claims[0] - submitted).total_seconds(), 2),
        # Between one trial's end and the next claim: the worker's poll and claim.
        claim_gaps_s=[
            round((c - e).total_seconds(), 2) for e, c in zip(ends[:-1], claims[1:], strict=True)
        ],
    )


# --- (b) the Optuna example's way -----------------------------------------------------------


def run_baseline(
    recipe: Recipe, lrs: list[float], data_dir: Path, mnist_folder: str, work: Path
) -> dict[str, Any]:
    """bench/_optuna_baseline.py in a fresh interpreter on *lrs*, in that order."""
    work.mkdir(parents=True, exist_ok=True)
    recipe_path, out_path = work / "recipe.json", work / "result.json"
    recipe_path.write_text(
        json.dumps(
            {
                **recipe.__dict__,
                "data_root": str(data_dir),
                "folder": mnist_folder,
                "lr_low": LR_LOW,
                "lr_high": LR_HIGH,
                "lrs": lrs,
            }
        )
    )
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(BASELINE), str(recipe_path), str(out_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    process_s = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"baseline failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result = json.loads(out_path.read_text())
    trials = [
        TrialResult(
            lr=t["lr"],
            state=t["state"],
            val_acc=t["val_acc"],
            epoch_seconds=t["seconds"],
            stopped_because="pruned" if t["state"] == "pruned" else None,
            last_val_acc=t["last_val_acc"],
        )
        for t in result["trials"]
    ]
    return summarise(
        trials,
        result["wall_s"],
        startup_s=round(result["startup_s"], 2),
        data_prep_s=round(result["data_prep_s"], 2),
        process_s=round(process_s, 2),
        pruner=result["pruner"],
        torch_threads=result["torch_threads"],
    )


# --- one configuration, the report ---------------------------------------------------------


def compare(
    recipe: Recipe, search: str, trials: int, data_dir: Path, mnist_folder: str, work: Path
) -> dict[str, Any]:
    spec = study_spec(recipe, search, trials, mnist_folder)
    print(f"== {recipe.dataset} {search}: sweepdoc", flush=True)
    sweepdoc = run_sweepdoc(spec, work / "home", data_dir)
    print(f"== {recipe.dataset} {search}: optuna example", flush=True)
    optuna_run = run_baseline(recipe, sweepdoc["lrs"], data_dir, mnist_folder, work / "baseline")
    accuracy_gap = (
        None
        if sweepdoc["best_val_acc"] is None or optuna_run["best_val_acc"] is None
        else round(sweepdoc["best_val_acc"] - optuna_run["best_val_acc"], 4)
    )
    return {
        "dataset": recipe.dataset,
        "search": search,
        "spec": spec,
        "lrs_note": "the baseline trains the learning rates sweepdoc ran, in the same order",
        "pruners": {
            "sweepdoc": "MedianPruner(n_startup_trials=2, n_warmup_steps=2) + live check",
            "optuna": "MedianPruner() (n_startup_trials=5, n_warmup_steps=0)",
        },
        "sweepdoc": sweepdoc,
        "optuna": optuna_run,
        "ratios": {
            "wall_sweepdoc_over_optuna": round(sweepdoc["wall_s"] / optuna_run["wall_s"], 3),
            "epochs_sweepdoc_over_optuna": round(
                sweepdoc["epochs_total"] / max(1, optuna_run["epochs_total"]), 3
            ),
            "epoch_s_sweepdoc_over_optuna": round(
                (sweepdoc["mean_epoch_s"] or 0.0) / (optuna_run["mean_epoch_s"] or 1.0), 3
            ),
            "best_val_acc_sweepdoc_minus_optuna": accuracy_gap,
        },
    }


def _stops(stopped: dict[str, int]) -> str:
    return ", ".join(f"{n} {why}" for why, n in stopped.items()) or "-"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'configuration':16} {'system':8} {'wall s':>8} {'start s':>7} {'epochs':>9} "
        f"{'s/epoch':>7} {'other s':>7} {'best acc':>8} {'at lr':>8}  stopped early"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        name = f"{row['dataset']} {row['search']}"
        for system in ("sweepdoc", "optuna"):
            r = row[system]
            acc = f"{r['best_val_acc']:.4f}" if r["best_val_acc"] is not None else "-"
            lr = f"{r['best_lr']:.2g}" if r["best_lr"] is not None else "-"
            print(
                f"{name:16} {system:8} {r['wall_s']:8.1f} {r['startup_s']:7.1f} "
                f"{r['epochs_total']:>4}/{r['epochs_max']:<4} {r['mean_epoch_s'] or 0:7.3f} "
                f"{r['outside_epochs_s']:7.1f} "
                f"{acc:>8} {lr:>8}  {_stops(r['stopped_early'])}"
            )
            name = ""
        q = row["ratios"]
        gap = q["best_val_acc_sweepdoc_minus_optuna"]
        print(
            f"{'':16} {'ratio':8} wall ×{q['wall_sweepdoc_over_optuna']:.2f}, epochs "
            f"×{q['epochs_sweepdoc_over_optuna']:.2f}, s/epoch "
            f"×{q['epoch_s_sweepdoc_over_optuna']:.2f}, best acc "
            + (f"{gap:+.4f}" if gap is not None else "-")
        )


def add_recipe_options(parser: argparse.ArgumentParser) -> None:
    """The options of a run of RECIPES, here and in bench/pack.py: the datasets, the searches,
    the random search's trials, the epochs, and the MNIST images (export_mnist_for)."""
    parser.add_argument("--datasets", default="digits,mnist")
    parser.add_argument("--searches", default="grid,random")
    parser.add_argument("--trials", type=int, default=20, help="random search trials")
    parser.add_argument("--epochs", type=int, default=None, help="override both recipes")
    parser.add_argument("--mnist-train", type=int, default=5000)
    parser.add_argument("--mnist-val", type=int, default=1000)
    parser.add_argument(
        "--mnist-source",
        type=Path,
        default=default_mnist_dir(),
        help="MNIST 10k IDX folder (default: $SWEEPDOC_BENCH_MNIST, else ../shared/data/mnist-10k)",
    )
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/sweepdoc-bench-data"))


def export_mnist_for(args: argparse.Namespace) -> str:
    """The MNIST folder under --data-root that a study's dataset names (study_spec's
    *mnist_folder*), exported there first when --datasets has mnist."""
    folder = f"mnist-{args.mnist_train}-{args.mnist_val}"
    if "mnist" in args.datasets.split(","):
        export_mnist(
            args.mnist_source, args.data_root / folder, train=args.mnist_train, val=args.mnist_val
        )
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_options(parser)
    parser.add_argument("--out", type=Path, default=RESULTS / "optuna_compare.json")
    args = parser.parse_args()

    datasets = args.datasets.split(",")
    mnist_folder = export_mnist_for(args)
    rows = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sweepdoc-optuna-compare-") as tmp:
        for dataset in datasets:
            recipe = RECIPES[dataset].at(epochs=args.epochs)
            for search in args.searches.split(","):
                work = Path(tmp) / f"{dataset}-{search}"
                rows.append(
                    compare(recipe, search, args.trials, args.data_root, mnist_folder, work)
                )
    total_s = time.perf_counter() - began
    print_table(rows)
    print(f"\nwhole benchmark: {total_s:.0f} s")
    write_result(
        "optuna_compare",
        {
            "recipes": {d: RECIPES[d].__dict__ for d in datasets},
            "epochs_override": args.epochs,
            "mnist_images": {"train": args.mnist_train, "val": args.mnist_val},
            "sweepdoc_worker_settings": shipped_worker_settings(),
            "total_s": round(total_s, 1),
            "configurations": rows,
        },
        out=args.out,
    )


if __name__ == "__main__":
    main()
