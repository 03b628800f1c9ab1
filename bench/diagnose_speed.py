"""Time the diagnoser: validation + diagnose_run (and live_check) for runs of 10 to 10,000 epochs.

    .venv/bin/python bench/diagnose_speed.py

Per run length: the best of several timings (the one least disturbed by other processes) of
parsing the curves JSON into `Curves`, of `diagnose_run` and of the per-epoch `live_check`,
and their sum as the time per run; writes bench/results/diagnose_speed.json. As a baseline,
the per-run figure is set against one training epoch of the bundled digits benchmark in
docs/benchmarks.md (the diagnosis runs once per trial, the live check once per epoch).
The targets (issue 11): diagnosing a 1,000-epoch run, forecast included, ≤ 20 ms; the live
check (one call after each epoch) ≤ 1 ms at 1,000 epochs — it refits nothing. Curves are a
noisy, converging run with the health statistics, built with the standard library only;
the forecast thins a long run to at most 120 points, so its cost stops growing with the
epochs while the running medians' does not.
"""

from __future__ import annotations

import math
import random
import sys
import timeit
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from bench._common import write_result
from studies.diagnosis import Curves, diagnose_run, live_check

SIZES = (10, 100, 1_000, 10_000)


def curves(epochs: int, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    tau = max(2.0, epochs / 10)
    out: dict[str, Any] = {"num_classes": 10}
    shapes = {
        "train_loss": lambda e: 2.3 * math.exp(-e / tau) + 0.02,
        "val_loss": lambda e: 2.3 * math.exp(-e / tau) + 0.06,
        "train_acc": lambda e: 0.99 - 0.89 * math.exp(-e / tau),
        "val_acc": lambda e: 0.98 - 0.88 * math.exp(-e / tau),
        "lr": lambda e: 0.05,
        "grad_norm": lambda e: 1.0,
        "grad_norm_first": lambda e: 0.3,
        "grad_norm_last": lambda e: 1.0,
        "dead_relu_fraction": lambda e: 0.01,
    }
    for name, shape in shapes.items():
        values = [shape(e) * (1 + rng.gauss(0, 0.01)) for e in range(1, epochs + 1)]
        out[name] = [min(1.0, v) if "acc" in name else v for v in values]
    return out


def best_ms(statement: Any, repeat: int) -> float:
    """Best of *repeat* timings of one call, in ms (the least disturbed by other processes)."""
    return 1000 * min(timeit.repeat(statement, number=1, repeat=repeat))


def main() -> None:
    rows = []
    print(
        f"{'epochs':>8} {'validate ms':>12} {'diagnose ms':>12} {'live ms':>9} "
        f"{'per run ms':>11}  label"
    )
    for epochs in SIZES:
        data = curves(epochs)
        parsed = Curves.model_validate(data)
        repeat = 50 if epochs <= 1000 else 5
        validate = best_ms(lambda data=data: Curves.model_validate(data), repeat)
        diagnose = best_ms(lambda parsed=parsed: diagnose_run(parsed), repeat)
        live = best_ms(lambda parsed=parsed: live_check(parsed), repeat)
        label = diagnose_run(parsed).label
        row = {
            "epochs": epochs, "validate_ms": validate, "diagnose_ms": diagnose, "live_ms": live,
            "per_run_ms": validate + diagnose, "label": str(label),
        }
        rows.append(row)
        print(
            f"{epochs:>8} {validate:>12.3f} {diagnose:>12.3f} {live:>9.3f} "
            f"{validate + diagnose:>11.3f}  {label}"
        )
    write_result("diagnose_speed", {"runs": rows})


if __name__ == "__main__":
    main()
