"""Loading a script of bench/diagnoser (not a package) as a module, for the tests that check
the labeled set's tools."""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCH_DIAGNOSER = Path(__file__).resolve().parents[2] / "bench" / "diagnoser"


def load_bench_module(stem: str) -> ModuleType:
    """bench/diagnoser/<stem>.py, imported as `diagnoser_<stem>`."""
    spec = importlib.util.spec_from_file_location(
        f"diagnoser_{stem}", BENCH_DIAGNOSER / f"{stem}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def bench_fixture(stem: str) -> Any:
    """A module-scoped fixture named *stem* giving bench/diagnoser/<stem>.py: assign it at
    module level (``crossval = bench_fixture("crossval")``) and request it by that name."""

    @pytest.fixture(scope="module", name=stem)
    def _module() -> ModuleType:
        return load_bench_module(stem)

    return _module
