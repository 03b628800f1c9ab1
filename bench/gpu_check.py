"""The one-shot GPU check: five measurements on one GPU in under 8 minutes, one table.

Run through ``bench/gpu_check.sh`` (which installs the carried wheels first; its header says
how to call the device tool). Every section runs in its own process with a time budget, so
a crash, a CUDA error or a hang loses that section only: its row says "failed: <reason>",
the others still print, and the exit status is non-zero.

1. train: the trainer's images/s against a bare loop over the same device-resident tensors
   and against the usual torchvision DataLoader pipeline (PIL transforms in 8 worker
   processes), CIFAR-shaped synthetic data, resnet width 64, depth 2, 3 stages, batch 512
   (``bench/gpu_train.py``'s measurement; median of the epochs after the first).
   Baseline: the bare loop.
2. precision: the trainer with ``precision: fp32`` against ``bf16`` (autocast), same run.
   Baseline: fp32.
3. workers: 1, 2 and 4 ``python3 -m service worker --device cuda`` processes sharing the GPU
   on one SQLite database, working one queue of 8 identical small trials (5,000 synthetic
   CIFAR images, resnet width 32, 4 epochs); trials/min and all workers' training images/s
   from first claim to last finish (``tests/scale/harness.py``). Baseline: one worker.
4. study: ``python3 -m service serve --workers 2`` (both workers on the GPU), a 10-trial
   random learning-rate study (1e-3 .. 1) of the same small trials on synthetic CIFAR,
   submitted over HTTP: wall time from submission to the study's end, best val accuracy,
   the diagnoser's labels.
5. packing (issue 15): one worker, an 8-point learning-rate grid trained alone
   (``max_pack: 1``) and packed (``max_pack: auto``: as many members as the memory estimate
   fits, up to 16), for a digits-size CNN (simple, width 32, 8×8 images) and a CIFAR-size one
   (the workers section's resnet on synthetic CIFAR); trials/min, first claim to last
   finish. Baseline: alone. Goal: at least 3× the trials per GPU-hour for both.

Sizes and budgets (train 70 s, precision 45 s, workers 110 s, study 60 s, packing 150 s)
are set for an H100/H200 with 16 cores; ``--smoke`` runs every section on the CPU with tiny
sizes (the rows then say cpu), to check the script end to end without a GPU.

    bash bench/gpu_check.sh                 # on the GPU machine: bench/results/gpu_check.json
    bash bench/gpu_check.sh --smoke         # anywhere, ~3 min on 2 cores: /tmp/gpu_check_smoke.json
    .venv/bin/python bench/gpu_check.py --sections train,precision --smoke
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/, tests/ and the project's packages, without install

from bench._common import write_result  # noqa: E402

SECTIONS = ("train", "precision", "workers", "study", "packing")
# Class pattern share of the workers' and the study's synthetic images: learnable, so the
# study's accuracies and labels are real readings (throughput sections use pure noise).
LEARNABLE = 0.3


@dataclass(frozen=True)
class Sizes:
    """Everything that makes the check long or short."""

    device: str
    # train + precision: bench/gpu_train.py's run
    train_images: int
    epochs: int
    batch_size: int
    width: int
    depth: int
    stages: int
    loader_workers: int
    # workers + study: one small trial
    trial_images: int
    trial_width: int
    trial_stages: int
    trial_epochs: int
    trial_batch: int
    worker_counts: tuple[int, ...]
    queue_trials: int
    study_trials: int
    serve_workers: int
    pack_trials: int  # packing: grid points per study, trained alone and packed
    budgets_s: dict[str, float]


FULL = Sizes(
    device="cuda",
    train_images=20_000, epochs=3, batch_size=512, width=64, depth=2, stages=3,
    loader_workers=8,
    trial_images=5_000, trial_width=32, trial_stages=3, trial_epochs=4, trial_batch=256,
    worker_counts=(1, 2, 4), queue_trials=8, study_trials=10, serve_workers=2, pack_trials=8,
    budgets_s={"train": 70, "precision": 45, "workers": 110, "study": 60, "packing": 150},
)
SMOKE = Sizes(
    device="cpu",
    train_images=600, epochs=2, batch_size=64, width=8, depth=1, stages=2,
    loader_workers=1,
    trial_images=300, trial_width=4, trial_stages=1, trial_epochs=3, trial_batch=64,
    worker_counts=(1, 2), queue_trials=2, study_trials=3, serve_workers=1, pack_trials=3,
    budgets_s={"train": 60, "precision": 60, "workers": 150, "study": 120, "packing": 150},
)


@dataclass
class Row:
    """One line of the summary table."""

    section: str
    what: str
    value: float | str | None
    unit: str
    ratio: float | None = None  # value / the section's baseline value
    baseline: str = ""  # what the ratio compares with ("" on the baseline row itself)


class RowSink:
    """Rows of one section, appended to a JSON-lines file as soon as each is known, so a
    section killed at its budget still hands back what it measured."""

    def __init__(self, path: Path, section: str) -> None:
        self.path, self.section = path, section

    def add(self, row: Row) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(asdict(row)) + "\n")
        print(f"  {row.what}: {_shown(row.value)} {row.unit}", flush=True)

    def rates(self, rates: dict[str, float], unit: str, *, baseline: str) -> None:
        """One row per entry, each compared with *rates[baseline]*."""
        base = rates[baseline]
        for what, value in rates.items():
            self.add(Row(self.section, what, round(value, 1), unit,
                         round(value / base, 2) if base else None,
                         "" if what == baseline else baseline))


# -- the sections (each runs in its own process) ------------------------------------------


def section_train(sizes: Sizes, sink: RowSink, deadline: float) -> None:
    import torch

    from bench.gpu_train import (
        cifar_config,
        images_for,
        measure_loops,
        steady_rate,
        write_synthetic_cifar,
    )

    device = torch.device(sizes.device)
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_cifar(Path(tmp), images_for(sizes.train_images))
        config = cifar_config(
            Path(tmp), width=sizes.width, depth=sizes.depth, stages=sizes.stages,
            batch_size=sizes.batch_size, epochs=sizes.epochs, device=device,
        )
        loops = measure_loops(
            config, device, epochs=sizes.epochs, loader_workers=sizes.loader_workers
        )
    names = {"trainer": "trainer (sweepdoc)", "minimal": "minimal loop",
             "dataloader": f"DataLoader loop ({sizes.loader_workers} workers)"}
    sink.rates({names[k]: steady_rate(v) for k, v in loops.items()}, "images/s",
               baseline="minimal loop")


def section_precision(sizes: Sizes, sink: RowSink, deadline: float) -> None:
    import torch

    from bench.gpu_train import cifar_config, images_for, steady_rate, write_synthetic_cifar
    from trainer import train

    device = torch.device(sizes.device)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_cifar(Path(tmp), images_for(sizes.train_images))
        for precision in ("fp32", "bf16"):
            config = cifar_config(
                Path(tmp), width=sizes.width, depth=sizes.depth, stages=sizes.stages,
                batch_size=sizes.batch_size, epochs=sizes.epochs, device=device,
                precision=precision,
            )
            history = train(config)
            rates[f"trainer {precision}"] = steady_rate([r.images_per_s for r in history.records])
    sink.rates(rates, "images/s", baseline="trainer fp32")


def trial_spec(
    sizes: Sizes, name: str, search: dict[str, Any], max_parallel: int
) -> dict[str, Any]:
    """A study of small identical resnet trials on the synthetic CIFAR in SWEEPDOC_DATA_DIR
    (no pruner: every trial does the same work)."""
    return {
        "name": name,
        "dataset": "cifar10",
        "data": {"val_fraction": 0.2, "augment": "crop+flip"},
        "model": {"arch": "resnet", "width": sizes.trial_width, "depth": 1,
                  "stages": sizes.trial_stages},
        "train": {"epochs": sizes.trial_epochs, "batch_size": sizes.trial_batch,
                  "schedule": "none"},
        "search": search,
        "pruner": "none",
        "max_parallel": max_parallel,
    }


def section_workers(sizes: Sizes, sink: RowSink, deadline: float) -> None:
    from bench.gpu_train import write_synthetic_cifar
    from tests.scale.harness import ScaleRun, run_workers

    trials = sizes.queue_trials
    # Moderate rates only: none diverges, so every trial trains all its epochs.
    grid = [round(0.01 + 0.09 * i / max(1, trials - 1), 4) for i in range(trials)]
    runs: dict[int, ScaleRun] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_synthetic_cifar(data, sizes.trial_images, signal=LEARNABLE)
        for count in sizes.worker_counts:
            spec = trial_spec(sizes, f"gpu-workers-{count}",
                              {"sampler": "grid", "grid": grid}, max_parallel=count)
            run = run_workers(
                f"sqlite:///{tmp}/workers-{count}.db", workers=count, trials=trials,
                home=Path(tmp) / f"home-{count}", device=sizes.device,
                timeout_s=max(5.0, deadline - time.monotonic()), spec=spec,
                extra_env={"SWEEPDOC_DATA_DIR": str(data)},
            )
            if any(run.exit_codes) or not run.trained_images:
                raise RuntimeError(
                    f"{count} workers: exit codes {run.exit_codes}, "
                    f"{run.trained_images} images trained\n{run.logs[-3000:]}"
                )
            runs[count] = run
            one = runs[min(runs)]
            label = f"{count} worker{'s' if count > 1 else ''}"
            sink.add(Row("workers", f"{label}: trials/min", round(run.trials_per_minute, 1),
                         "trials/min", round(run.trials_per_minute / one.trials_per_minute, 2),
                         "" if run is one else "1 worker"))
            sink.add(Row("workers", f"{label}: training images/s, all", round(run.images_per_s),
                         "images/s", round(run.images_per_s / one.images_per_s, 2),
                         "" if run is one else "1 worker"))


def section_study(sizes: Sizes, sink: RowSink, deadline: float) -> None:
    from bench.gpu_train import write_synthetic_cifar
    from tests.service.serve_process import ServeProcess, serving

    with tempfile.TemporaryDirectory() as tmp:
        data, home = Path(tmp) / "data", Path(tmp) / "home"
        write_synthetic_cifar(data, sizes.trial_images, signal=LEARNABLE)
        process = ServeProcess(
            home, database_url=f"sqlite:///{home}/sweepdoc.db", workers=sizes.serve_workers,
            env_overrides={"SWEEPDOC_DATA_DIR": str(data)},
        )
        with serving(process, workers=sizes.serve_workers):
            process.wait_for_workers(sizes.serve_workers)
            search = {"sampler": "random", "lr_low": 1e-3, "lr_high": 1.0,
                      "n_trials": sizes.study_trials}
            spec = trial_spec(sizes, "gpu-check-lr", search, max_parallel=sizes.serve_workers)
            start = time.monotonic()
            response = process.http.post("/v1/studies", json=spec)
            if response.status_code != 201:
                raise RuntimeError(f"submit: {response.status_code} {response.text}")
            study = process.wait_for_study(
                response.json()["id"], timeout_s=max(5.0, deadline - time.monotonic() - 5)
            )
            wall = time.monotonic() - start
            trials = process.get(f"/v1/studies/{study['id']}/trials")["data"]
            process.stop()
    done = sum(t["state"] == "complete" for t in trials)
    labels = collections.Counter(t["label"] or "none" for t in trials)
    best = study["best_trial"]
    workers = f"{sizes.serve_workers} worker{'s' if sizes.serve_workers > 1 else ''}"
    sink.add(Row("study", f"{sizes.study_trials} trials, {workers}: submit to done",
                 round(wall, 1), "s"))
    sink.add(Row("study", f"trials complete (study {study['status']})",
                 f"{done}/{len(trials)}", "trials"))
    sink.add(Row("study", "best val acc" + (f" (lr {best['lr']:.3g})" if best else ""),
                 round(best["value"], 4) if best else None, "accuracy"))
    sink.add(Row("study", "labels", ", ".join(f"{k} {v}" for k, v in labels.most_common()),
                 "trials"))


def pack_spec(sizes: Sizes, dataset: str, max_pack: int | str) -> dict[str, Any]:
    """An lr grid of identical small trials that may pack (the same config but the rate):
    a digits-size CNN, or the workers section's CIFAR-size resnet."""
    n = sizes.pack_trials
    digits = dataset == "digits"
    model: dict[str, Any] = (
        {"arch": "simple", "width": sizes.trial_width, "stages": 2}
        if digits
        else {"arch": "resnet", "width": sizes.trial_width, "depth": 1,
              "stages": sizes.trial_stages}
    )
    return {
        "name": f"gpu-pack-{dataset}-{max_pack}",
        "dataset": dataset,
        "data": {"val_fraction": 0.2, "augment": "none" if digits else "crop+flip"},
        "model": model,
        "train": {"epochs": sizes.trial_epochs, "batch_size": 64 if digits else sizes.trial_batch,
                  "schedule": "none"},
        # Moderate rates only: none diverges, so every member trains all its epochs.
        "search": {"sampler": "grid",
                   "grid": [round(0.01 + 0.09 * i / max(1, n - 1), 4) for i in range(n)]},
        "pruner": "none",
        "max_parallel": n,
        "max_pack": max_pack,
    }


def section_packing(sizes: Sizes, sink: RowSink, deadline: float) -> None:
    from bench.gpu_train import write_synthetic_cifar
    from tests.scale.harness import run_workers

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        write_synthetic_cifar(data, sizes.trial_images, signal=LEARNABLE)
        for dataset in ("digits", "cifar10"):
            rates: dict[str, float] = {}
            for mode, max_pack in (("alone", 1), ("packed", "auto")):
                run = run_workers(
                    f"sqlite:///{tmp}/pack-{dataset}-{mode}.db", workers=1,
                    trials=sizes.pack_trials, home=Path(tmp) / f"home-{dataset}-{mode}",
                    device=sizes.device, timeout_s=max(5.0, deadline - time.monotonic()),
                    spec=pack_spec(sizes, dataset, max_pack),
                    extra_env={"SWEEPDOC_DATA_DIR": str(data)},
                )
                if any(run.exit_codes) or not run.trained_images:
                    raise RuntimeError(f"{dataset} {mode}: exit codes {run.exit_codes}, "
                                       f"{run.trained_images} images trained\n{run.logs[-3000:]}")
                rates[f"{dataset} {mode}: trials/min"] = run.trials_per_minute
            sink.rates(rates, "trials/min", baseline=next(iter(rates)))


RUNNERS = {
    "train": section_train,
    "precision": section_precision,
    "workers": section_workers,
    "study": section_study,
    "packing": section_packing,
}


# -- the driver -----------------------------------------------------------------------------


def run_section(name: str, sizes: Sizes, smoke: bool) -> tuple[list[Row], str | None, float]:
    """Run one section in a child process (its own session, so a timeout kills the workers
    and servers it started too); its rows, the failure (or None) and its seconds."""
    budget = sizes.budgets_s[name]
    with tempfile.TemporaryDirectory() as tmp:
        rows_file = Path(tmp) / "rows.jsonl"
        command = [sys.executable, str(Path(__file__).resolve()), "--section", name,
                   "--rows-file", str(rows_file), "--budget-s", str(budget)]
        command += ["--smoke"] if smoke else []
        start = time.monotonic()
        child = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        try:
            code = child.wait(timeout=budget + 10)  # the section stops itself at its budget
            failure = None if code == 0 else f"exit status {code}"
        except subprocess.TimeoutExpired:
            _stop(child)
            failure = f"over its {budget:.0f} s budget"
        seconds = time.monotonic() - start
        rows = [Row(**json.loads(line)) for line in rows_file.read_text().splitlines()] \
            if rows_file.exists() else []
    said = any(isinstance(r.value, str) and r.value.startswith("failed:") for r in rows)
    if failure is not None and not said:
        rows.append(Row(name, "section", f"failed: {failure}", ""))
    return rows, failure, seconds


def _stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM first: the section's ``finally`` blocks stop the servers and workers it
    started (`serve` starts its workers in sessions of their own, out of our group's reach);
    then SIGKILL to the whole group."""
    os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def device_name(sizes: Sizes) -> str:
    import torch

    if sizes.device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    from bench._common import machine

    return f"cpu ({machine()['cpu']})"


def versions() -> dict[str, str | None]:
    """Versions of what the check leans on (the GPU image's own and the carried wheels)."""
    found: dict[str, str | None] = {}
    for name in ("torch", "torchvision", "optuna", "fastapi", "starlette", "uvicorn",
                 "sqlalchemy", "pydantic", "typer", "typing-extensions"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def _shown(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value < 10:
        return f"{value:.4g}"
    return f"{value:,.0f}" if isinstance(value, float | int) else value


def print_table(rows: list[Row], header: str) -> None:
    print(f"\n{header}")
    print(f"{'section':10s} {'what':46s} {'value':>12s} {'unit':10s} vs baseline")
    for r in rows:
        ratio = "baseline" if r.ratio is not None and not r.baseline else (
            f"{r.ratio:.2f} x {r.baseline}" if r.ratio is not None else "")
        value = _shown(r.value)
        if isinstance(r.value, str) and len(value) > 12:  # labels, failures: own line width
            print(f"{r.section:10s} {r.what:46s} {value} {r.unit}")
        else:
            print(f"{r.section:10s} {r.what:46s} {value:>12s} {r.unit:10s} {ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes on the CPU: checks the script, measures nothing")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default bench/results/gpu_check.json; "
                        "with --smoke /tmp/gpu_check_smoke.json)")
    parser.add_argument("--section", choices=SECTIONS, help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--budget-s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = SMOKE if args.smoke else FULL

    if args.section:  # a child: one section, rows to --rows-file
        # SIGTERM from the driver unwinds the stack, so context managers clean up.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(f"{args.section}: stopped"))
        deadline = time.monotonic() + args.budget_s
        sink = RowSink(args.rows_file, args.section)
        try:
            RUNNERS[args.section](sizes, sink, deadline)
        except BaseException as exc:  # the reason goes into the table, the traceback above
            reason = (str(exc).strip().splitlines() or [""])[0][:120]
            sink.add(Row(args.section, "section", f"failed: {type(exc).__name__}: {reason}", ""))
            raise
        return

    names = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}")
    name = device_name(sizes)
    print(f"GPU check on {name}, sizes {'smoke (cpu)' if args.smoke else 'full'}", flush=True)
    rows: list[Row] = []
    timings: dict[str, dict[str, Any]] = {}
    for section in names:
        print(f"\n== {section} (budget {sizes.budgets_s[section]:.0f} s)", flush=True)
        section_rows, failure, seconds = run_section(section, sizes, args.smoke)
        rows += section_rows
        timings[section] = {"seconds": round(seconds, 1), "failed": failure}

    found = versions()
    date = datetime.now(UTC).isoformat(timespec="seconds")
    print_table(rows, f"{name} | torch {found['torch']} | {date} | total "
                f"{sum(t['seconds'] for t in timings.values()):.0f} s")
    payload = {
        "device": name,
        "smoke": args.smoke,
        "versions": found,
        "sizes": asdict(sizes),
        "sections": timings,
        "rows": [asdict(r) for r in rows],
    }
    out = args.out or (Path("/tmp/gpu_check_smoke.json") if args.smoke else None)
    write_result("gpu_check", payload, out=out)
    if os.environ.get("OUT"):  # the device tool's folder: it comes back with the reply
        write_result("gpu_check", payload, out=Path(os.environ["OUT"]) / "gpu_check.json")
    failed = [s for s, t in timings.items() if t["failed"]]
    if failed:
        raise SystemExit(f"failed sections: {', '.join(failed)}")


if __name__ == "__main__":
    main()
