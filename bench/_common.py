"""What every benchmark script shares: the machine it ran on, percentiles, and one JSON
envelope per result file in bench/results/ (docs/benchmarks.md is written from those files
by bench/report.py, so a number in the docs always has a file and a command behind it).
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
# Where MNIST's 10k test split (the four IDX gz files) lives unless SWEEPDOC_BENCH_MNIST says
# otherwise: a sibling of the checkout, so a clone finds it without naming this machine.
MNIST_ENV_VAR = "SWEEPDOC_BENCH_MNIST"
MNIST_DEFAULT_DIR = ROOT.parent / "shared" / "data" / "mnist-10k"


def default_mnist_dir() -> Path:
    """The MNIST 10k folder the benchmarks read by default: ``$SWEEPDOC_BENCH_MNIST`` if set,
    else ``../shared/data/mnist-10k`` next to the repository root. Every script that reads
    MNIST offers an option (``--mnist-source``/``--mnist``) whose default is this."""
    configured = os.environ.get(MNIST_ENV_VAR)
    return Path(configured) if configured else MNIST_DEFAULT_DIR


def machine() -> dict[str, Any]:
    """The machine in a few words, the same keys in every result file."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def shipped_worker_settings() -> dict[str, float]:
    """The worker settings a user gets (service/settings.py defaults), for the record of a
    benchmark that runs the service as shipped (ServeProcess(fast_workers=False))."""
    from service.settings import Settings

    names = ("worker_poll_interval_s", "worker_heartbeat_interval_s", "worker_stale_after_s")
    return {name: float(Settings.model_fields[name].default) for name in names}


# The commit the measured code came from: read when the script starts, not when it writes
# its result (a long run outlives the commits made meanwhile).
_COMMIT_AT_START = _commit()


def percentiles(values: list[float], digits: int = 2) -> dict[str, float | int | None]:
    """n, p50, p99 and max of *values* (nearest-rank p99: with 50 samples it is the max)."""
    if not values:
        return {"n": 0, "p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(0.99 * len(ordered) + 0.5) - 1))
    return {
        "n": len(ordered),
        "p50": round(statistics.median(ordered), digits),
        "p99": round(ordered[rank], digits),
        "max": round(ordered[-1], digits),
    }


def write_result(name: str, payload: dict[str, Any], out: Path | None = None) -> Path:
    """Write bench/results/<name>.json: the payload inside one envelope (benchmark, date,
    machine, the exact command, the commit). Returns the path written."""
    path = out or RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    script = Path(sys.argv[0]).resolve()
    try:
        shown = script.relative_to(ROOT)
    except ValueError:
        shown = script
    envelope = {
        "benchmark": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": shlex.join([".venv/bin/python", str(shown), *sys.argv[1:]]),
        "commit": _COMMIT_AT_START,
        "machine": machine(),
        **payload,
    }
    path.write_text(json.dumps(envelope, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
    return path
