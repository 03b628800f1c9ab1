"""Where a trial's time goes outside training, per member-epoch and per trial, packed and not.

One real worker in this process (``studies.worker.run_worker``, SQLite file, no server),
the digits 5-point grid of bench/pack.py (a simple CNN, Adam, median pruner) at width 16,
run unpacked (``max_pack: 1``) and packed alternately. The product's own functions are
wrapped with timers here (nothing in the product is changed): the training and evaluation
passes, each per-epoch write (the epoch row, Optuna's report and the pruner, the live
check, the member's files and their fsync), and everything else from the first claim to
the last finish. Reported: milliseconds per member-epoch for each part (the median over
the runs), so a change to the per-epoch path shows as a before/after of those figures.

    .venv/bin/python bench/pack_overhead.py [--repeats 3] [--width 16] [--epochs 15] [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.optuna_compare import RECIPES  # noqa: E402
from bench.pack import MODES, grid_in_process  # noqa: E402

# (module path, attribute, part name): what is timed. A part nested in another (the fsync in
# a file write, Optuna's report inside the recorder) is shown on its own line and counted
# in its parent too.
_TIMED = [
    ("trainer._packed_loop", "train_epoch", "training pass"),
    ("trainer._packed_loop", "evaluate", "evaluation pass"),
    ("trainer._loop", "_train_epoch", "training pass"),
    ("trainer._loop", "evaluate", "evaluation pass"),
    ("studies.queue", "record_epoch", "epoch row"),
    ("studies.queue", "record_epochs", "epoch row"),
    ("optuna.trial.Trial", "report", "optuna report"),
    ("optuna.trial.Trial", "should_prune", "pruner"),
    ("studies.recorder", "live_check", "live check"),
    ("trainer._packed_loop", "as_unpacked", "member sliced out"),
    ("trainer._packed_loop", "save_member_best", "best checkpoint"),
    ("trainer._packed_loop", "save_member_epoch_state", "epoch state"),
    ("trainer._loop", "save_best", "best checkpoint"),
    ("trainer._loop", "capture_state", "epoch state"),
    ("trainer._loop", "save_resume_state", "epoch state"),
    ("os", "fsync", "  of which fsync"),
]
# Paid once per trial (shown as ms per trial): its start, its end, and the pack's sharing.
_PER_TRIAL = [
    ("studies.trial_run.TrialRun", "start", "start: Optuna trial, attempt"),
    ("studies.trial_run.TrialRun", "prepare", "prepare: config, resume plan"),
    ("studies.pack_run", "_mark_packed", "packed_with written"),
    ("studies.recorder.EpochRecorder", "diagnose", "end: diagnosis"),
    ("studies.optuna_bridge", "annotate", "end: Optuna attributes"),
    ("studies.queue", "finish", "end: queue finish"),
    ("studies.optuna_bridge", "tell", "end: Optuna tell"),
    ("studies.checkpoints", "keep_checkpoint", "end: checkpoint kept"),
    ("studies.resume", "sweep", "after: slot files swept"),
]
_OUTER = "first claim → last finish"


class _Clock:
    """Seconds and calls per part, for one run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._depth: dict[str, int] = defaultdict(int)

    def wrap(self, part: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._depth[part] += 1  # a part calling itself (evaluate → evaluate) counts once
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self._depth[part] -= 1
                if self._depth[part] == 0:
                    self.seconds[part] += time.perf_counter() - start
                    self.calls[part] += 1

        return timed


@contextlib.contextmanager
def _timed(clock: _Clock) -> Iterator[None]:
    import importlib

    undo: list[tuple[Any, str, Any]] = []
    for module_path, attribute, part in _TIMED + _PER_TRIAL:
        module_name, _, last = module_path.rpartition(".")
        if last[:1].isupper():  # a class: its method, for every instance
            owner: Any = getattr(importlib.import_module(module_name), last)
        else:
            owner = importlib.import_module(module_path)
        if not hasattr(owner, attribute):
            continue  # this version of the product has no such function
        original = getattr(owner, attribute)
        undo.append((owner, attribute, original))
        setattr(owner, attribute, clock.wrap(part, original))
    try:
        yield
    finally:
        for owner, attribute, original in reversed(undo):
            setattr(owner, attribute, original)


def _one_run(home: Path, max_pack: int, width: int, epochs: int) -> dict[str, Any]:
    from studies import store
    from studies.optuna_bridge import close_storages
    from studies.worker import run_worker

    recipe = RECIPES["digits"].at(width=width, epochs=epochs)
    db, study, options = grid_in_process(home, recipe, max_pack)
    clock = _Clock()
    with _timed(clock):
        run_worker(options)
    trials = [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]
    db.dispose()
    close_storages()
    starts = [t.claimed_at for t in trials if t.claimed_at is not None]
    ends = [t.finished_at for t in trials if t.finished_at is not None]
    member_epochs = sum(t.epochs_done for t in trials)
    seconds = dict(clock.seconds)
    seconds[_OUTER] = (max(ends) - min(starts)).total_seconds()
    return {
        "member_epochs": member_epochs,
        "trials": len(trials),
        "seconds": seconds,
        "calls": dict(clock.calls),
    }


def _print_parts(parts: Iterable[str], runs: dict[str, list[dict[str, Any]]], per: str) -> None:
    """A line a part: its milliseconds per *per* (a run's "member_epochs" or "trials"), the
    median over each mode's runs."""
    for part in parts:
        cells = []
        for mode in MODES:
            values = [1000 * r["seconds"].get(part, 0.0) / r[per] for r in runs[mode]]
            cells.append(f"{statistics.median(values):10.2f}")
        print(f"{part:32} " + " ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    args = parser.parse_args()
    from trainer import warm_up

    warm_up()
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="sweepdoc-pack-overhead-") as tmp:
        _one_run(Path(tmp) / "warm", 1, args.width, 1)  # the dataset's decoding, untimed
        for repeat in range(args.repeats):
            for mode, max_pack in MODES.items():
                run = _one_run(Path(tmp) / f"{mode}-{repeat}", max_pack, args.width, args.epochs)
                runs[mode].append(run)
                print(
                    f"{mode} {repeat + 1}: {run['seconds'][_OUTER]:.2f} s, "
                    f"{run['member_epochs']} member-epochs",
                    flush=True,
                )
    if args.json is not None:
        args.json.write_text(json.dumps(runs, indent=1))
    parts = list(dict.fromkeys([p for *_, p in _TIMED] + [_OUTER]))
    print(f"\nms per member-epoch (median of {args.repeats}), digits w{args.width} grid")
    print(f"{'part':32} " + " ".join(f"{mode:>10}" for mode in MODES))
    _print_parts(parts, runs, per="member_epochs")
    outside = []
    for mode in MODES:
        values = []
        for r in runs[mode]:
            s = r["seconds"]
            train = s.get("training pass", 0.0) + s.get("evaluation pass", 0.0)
            values.append(1000 * (s[_OUTER] - train) / r["member_epochs"])
        outside.append(f"{statistics.median(values):10.2f}")
    print(f"{'outside training (all)':32} " + " ".join(outside))
    print(f"\nms per trial (median of {args.repeats})")
    _print_parts(dict.fromkeys(p for *_, p in _PER_TRIAL), runs, per="trials")
    counts = " ".join(
        f"{statistics.median(r['member_epochs'] for r in runs[m]):>10}" for m in MODES
    )
    print(f"{'member-epochs':32} {counts}")


if __name__ == "__main__":
    main()
