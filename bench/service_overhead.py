"""Service overhead: a trial run through the whole product against a minimal PyTorch loop.

(a) sweepdoc: a real `sweepdoc serve` with one local CPU worker on a SQLite file, the shipped
worker settings; a one-point grid study is submitted over HTTP and trained by the worker,
which stores every epoch, reports it to Optuna, checks it live and beats its heartbeat.
(b) minimal: the loop anyone would write by hand (bench/train_overhead.minimal_loop) in this
process: the same model (the trainer's builder, same seed), the same normalised tensors and
split, batch size, optimizer and constant learning rate, evaluating the validation split
every epoch, nothing else.

Per-epoch wall time of the service is the gap between two consecutive epochs' rows in the
database (`sweepdoc_epochs.created_at`, written by the worker's callback right after each
epoch), so it includes everything the service does per epoch; epoch 1 is dropped on both
sides (it carries data loading and model building). Each stored epoch also holds the
trainer's own wall time for it (training + evaluation), which splits the gap into the
trainer's share and the service's bookkeeping (storing the epoch, the Optuna report, the live
check). The harness polls the API only every few seconds, so that it takes no CPU from the
training it measures (the finish time is read from the database, not from the poll).
Whole-trial figures are reported too: claim → finished in the worker against data
preparation + all epochs in the minimal loop, and submit → finished as the user sees it.
Both sides use the same torch thread count (OMP_NUM_THREADS for the worker). Runs
alternate (service, minimal, service, ...) so load from other processes hits both alike.

    .venv/bin/python bench/service_overhead.py [--dataset digits|mnist] [--arch vgg]
        [--epochs 10] [--repeats 3] [--threads 2] [--mnist-source DIR]

digits (bundled; 1,437 training images of 8×8: epochs of a fifth of a second, the worst case
for a fixed per-epoch cost) or mnist (the real MNIST images in --mnist-source, default
$SWEEPDOC_BENCH_MNIST, else ../shared/data/mnist-10k next to the checkout; exported once as
an ImageFolder tree of 5,000 training and 1,000 validation images of 28×28: epochs of
seconds). Target (issue 7): per-epoch ratio service / minimal ≤ 1.05. Writes
bench/results/service_overhead_<dataset>.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve harness lives under tests/, the minimal loop in bench/

import torch  # noqa: E402

from bench._common import default_mnist_dir, write_result  # noqa: E402
from bench._mnist import export_mnist  # noqa: E402
from bench.train_overhead import add_recipe_options, minimal_loop  # noqa: E402
from studies.spec import StudySpec  # noqa: E402
from tests.service.serve_process import ServeProcess, serving  # noqa: E402


def study_spec(args: argparse.Namespace, index: int) -> dict[str, Any]:
    return {
        "name": f"overhead-{index}",
        "dataset": "digits" if args.dataset == "digits" else f"imagefolder:{MNIST_FOLDER}",
        "data": {"augment": "none"},
        "model": {"arch": args.arch, "width": args.width},
        "train": {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "sgd",
            "schedule": "none",
            "seed": 0,
        },
        "search": {"sampler": "grid", "grid": [args.lr]},
    }


MNIST_FOLDER = "mnist-5000-1000"  # under the data folder: train/ and val/, 28×28 PNG


def _utc(text: str) -> float:
    """A timestamp as SQLite holds sweepdoc's (naive text, UTC) in seconds since the epoch."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def service_trial(server: ServeProcess, db: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Submit *spec*, wait for it, and read the trial's timestamps from the database."""
    submitted = time.time()
    response = server.http.post("/v1/studies", json=spec)
    if response.status_code != 201:
        raise SystemExit(f"submit failed: {response.status_code} {response.text}")
    study = server.wait_for_study(response.json()["id"], timeout_s=3600, poll_s=3.0)
    if study["status"] != "completed":
        raise SystemExit(f"study ended {study['status']}:\n{server.log()}")
    with sqlite3.connect(db) as conn:
        trial_id, claimed, finished = conn.execute(
            "SELECT id, claimed_at, finished_at FROM sweepdoc_trials WHERE study_id = ?",
            (study["id"],),
        ).fetchone()
        rows = conn.execute(
            "SELECT created_at, record FROM sweepdoc_epochs WHERE trial_id = ? ORDER BY epoch",
            (trial_id,),
        ).fetchall()
    if len(rows) != spec["train"]["epochs"]:
        raise SystemExit(f"trial {trial_id} stored {len(rows)} epochs, expected more")
    stored = [_utc(created) for created, _ in rows]
    return {
        "epoch_s": [b - a for a, b in itertools.pairwise(stored)],  # epochs 2..N
        # The trainer's own measure of the same epochs (training + evaluation).
        "trainer_epoch_s": [json.loads(record)["seconds"] for _, record in rows[1:]],
        "trial_s": _utc(finished) - _utc(claimed),
        "submit_to_finish_s": _utc(finished) - submitted,
    }


def minimal_trial(spec: dict[str, Any], data_dir: Path, epochs: int) -> dict[str, Any]:
    config = StudySpec.model_validate(spec).to_run_config(
        {"lr": spec["search"]["grid"][0]}, data_dir=data_dir, device="cpu"
    )
    start = time.perf_counter()
    times = minimal_loop(config, epochs)  # prepares data and builds the model first
    total = time.perf_counter() - start
    return {"epoch_s": [wall for wall, _cpu in times[1:]], "trial_s": total}


def _median(runs: list[dict[str, Any]], key: str) -> float:
    """Median over every run's *key*: a list (per epoch) or one number (per trial)."""
    values = [v for run in runs for v in (run[key] if isinstance(run[key], list) else [run[key]])]
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits", choices=["digits", "mnist"])
    add_recipe_options(parser, arch="vgg", epochs=10, threads=2)  # threads: on both sides
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument(
        "--mnist-source", type=Path, default=default_mnist_dir(),
        help="MNIST 10k IDX folder (default: $SWEEPDOC_BENCH_MNIST, else ../shared/data/mnist-10k)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    service_runs: list[dict[str, Any]] = []
    minimal_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        db = home / "sweepdoc.db"
        data_dir = home / "data"
        if args.dataset == "mnist":
            export_mnist(args.mnist_source, data_dir / MNIST_FOLDER, train=5000, val=1000)
        env = {"OMP_NUM_THREADS": str(args.threads), "SWEEPDOC_DATA_DIR": str(data_dir)}
        server = ServeProcess(  # the shipped worker settings, not the tests' fast ones
            home, database_url=f"sqlite:///{db}", workers=1, env_overrides=env,
            fast_workers=False,
        )
        with serving(server, workers=1):
            for index in range(args.repeats):
                spec = study_spec(args, index)
                service_runs.append(service_trial(server, db, spec))
                minimal_runs.append(minimal_trial(spec, data_dir, args.epochs))
                print(
                    f"repeat {index + 1}: service "
                    f"{statistics.median(service_runs[-1]['epoch_s']) * 1000:.1f} ms/epoch, "
                    f"minimal {statistics.median(minimal_runs[-1]['epoch_s']) * 1000:.1f} "
                    "ms/epoch",
                    flush=True,
                )
            server.stop()

    service_epoch = _median(service_runs, "epoch_s")
    trainer_epoch = _median(service_runs, "trainer_epoch_s")
    minimal_epoch = _median(minimal_runs, "epoch_s")
    service_trial_s = _median(service_runs, "trial_s")
    minimal_trial_s = _median(minimal_runs, "trial_s")
    submit_s = _median(service_runs, "submit_to_finish_s")
    summary = {
        "epoch_ms": {
            "service": service_epoch * 1000,
            "trainer_in_service": trainer_epoch * 1000,
            "minimal": minimal_epoch * 1000,
        },
        "epoch_ratio": service_epoch / minimal_epoch,
        "trainer_ratio": trainer_epoch / minimal_epoch,
        "bookkeeping_ms": (service_epoch - trainer_epoch) * 1000,
        "trial_s": {"service_claim_to_finish": service_trial_s, "minimal": minimal_trial_s},
        "trial_ratio": service_trial_s / minimal_trial_s,
        "submit_to_finish_s": submit_s,
        "submit_ratio": submit_s / minimal_trial_s,
        "target_epoch_ratio": 1.05,
    }
    write_result(
        f"service_overhead_{args.dataset}",
        {
            "setup": {
                "dataset": args.dataset, "arch": args.arch, "width": args.width,
                "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
                "repeats": args.repeats, "threads": args.threads, "database": "sqlite",
                "worker_settings": "shipped defaults",
            },
            "summary": summary,
            "runs": {"service": service_runs, "minimal": minimal_runs},
        },
    )
    print(
        f"\n{args.dataset}, {args.arch} width {args.width}, {args.epochs} epochs, "
        f"{args.threads} thread(s), {args.repeats} repeats (medians)"
    )
    print(f"{'':28}{'sweepdoc':>10}{'minimal':>10}{'ratio':>8}")
    print(
        f"{'per epoch (ms, epochs 2..N)':28}{service_epoch * 1000:10.1f}"
        f"{minimal_epoch * 1000:10.1f}{summary['epoch_ratio']:8.3f}   target ≤ 1.05"
    )
    print(
        f"{'  of which the trainer':28}{trainer_epoch * 1000:10.1f}{minimal_epoch * 1000:10.1f}"
        f"{summary['trainer_ratio']:8.3f}   bookkeeping {summary['bookkeeping_ms']:.1f} ms/epoch"
    )
    print(
        f"{'whole trial (s)':28}{service_trial_s:10.2f}{minimal_trial_s:10.2f}"
        f"{summary['trial_ratio']:8.3f}   claim → finished"
    )
    print(
        f"{'submit → finished (s)':28}{submit_s:10.2f}{minimal_trial_s:10.2f}"
        f"{summary['submit_ratio']:8.3f}   incl. the worker's poll wait"
    )


if __name__ == "__main__":
    main()
