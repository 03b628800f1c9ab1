"""`trainer.warm_up()` loads up front what the first training run would load lazily."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter: this test process has long since imported everything.
_PROBE = """
import sys
import trainer
trainer.warm_up()
assert "torch._dynamo" in sys.modules, "the optimizer machinery was not loaded"
before = set(sys.modules)
from trainer import DataConfig, ModelConfig, OptimConfig, RunConfig, train
history = train(RunConfig(
    data=DataConfig(dataset="digits", train_subset=100),
    model=ModelConfig(arch="simple", width=4),
    optim=OptimConfig(lr=0.05, epochs=1, device="cpu"),
))
assert len(history.records) == 1
late = sorted(m for m in set(sys.modules) - before if m == "torch" or m.startswith("torch."))
print("late torch modules:", late)
assert not late, late
"""


def test_after_warm_up_a_first_run_imports_no_more_of_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "late torch modules: []" in result.stdout
