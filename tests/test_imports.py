"""The import graph of service/, studies/ and trainer/, checked by import-linter.

import-linter builds its graph with grimp, which reads every import statement in the
source: those at the top, those inside functions and those under ``TYPE_CHECKING``. So a
cycle hidden behind an import inside a function (the way studies/db.py ↔ migrations and
trainer/_data.py ↔ _stream.py once were) fails here as surely as a top-level one; the second
test proves it on a throwaway package.

The contracts are the rules docs/architecture.md states: imports point down only
(service → studies → trainer; trainer imports neither), no cycle between sibling modules or
packages at any depth, trainer is pure PyTorch, and studies.diagnosis needs neither a deep
learning library nor a database nor plotting.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The console script installed with import-linter (the dev extras), beside this interpreter.
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

LAYERS = ("service", "studies", "trainer")  # top to bottom
# What the trainer must never import: it knows nothing of HTTP, databases or Optuna.
NOT_IN_TRAINER = (
    "optuna", "optuna_dashboard", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn",
    "typer", "httpx",
)
# What the diagnoser must never import: it labels curves from any framework, without a deep
# learning library, a database or a plotting stack. numpy is allowed: sweepdoc depends on it
# anyway, and fitting curves (the forecasts) needs it.
NOT_IN_DIAGNOSIS = ("torch", "torchvision", "sklearn", "matplotlib", "optuna", "sqlalchemy")


def _lines(names: tuple[str, ...]) -> str:
    return "".join(f"\n    {name}" for name in names)


def structure_contracts(layers: tuple[str, ...]) -> str:
    """The layering and no-cycle contracts over *layers* (top to bottom), as import-linter
    INI sections."""
    return textwrap.dedent(
        """
        [importlinter:contract:layers]
        name = imports point down only: {arrow}
        type = layers
        layers ={layers}

        [importlinter:contract:acyclic]
        name = no import cycle between sibling modules or packages
        type = acyclic_siblings
        ancestors ={layers}
        """
    ).format(arrow=" -> ".join(layers), layers=_lines(layers))


def config(layers: tuple[str, ...], extra_contracts: str = "") -> str:
    head = textwrap.dedent(
        """
        [importlinter]
        root_packages ={packages}
        include_external_packages = True
        """
    ).format(packages=_lines(layers))
    return head + structure_contracts(layers) + extra_contracts


SWEEPDOC_CONTRACTS = textwrap.dedent(
    """
    [importlinter:contract:trainer-pure]
    name = trainer is pure PyTorch
    type = forbidden
    source_modules = trainer
    forbidden_modules ={not_in_trainer}

    [importlinter:contract:diagnosis-light]
    name = studies.diagnosis needs no torch, database or plotting
    type = forbidden
    source_modules = studies.diagnosis
    forbidden_modules ={not_in_diagnosis}
    """
).format(not_in_trainer=_lines(NOT_IN_TRAINER), not_in_diagnosis=_lines(NOT_IN_DIAGNOSIS))


def lint_imports(
    config_text: str, *, cwd: Path, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """Run import-linter on *config_text* from *cwd* (whose packages it analyses); no cache,
    so nothing is written into the checkout and every run reads the source as it is."""
    path = tmp_path / "importlinter.ini"
    path.write_text(config_text)
    return subprocess.run(
        [str(LINT_IMPORTS), str(path), "--no-cache"],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )


def test_sweepdoc_layers_point_down_and_no_module_is_in_a_cycle(tmp_path: Path) -> None:
    result = lint_imports(config(LAYERS, SWEEPDOC_CONTRACTS), cwd=ROOT, tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 4 kept, 0 broken." in result.stdout, result.stdout


def _write_package(root: Path, files: dict[str, str]) -> None:
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))


def test_the_check_fails_on_a_cycle_or_an_upward_import_made_inside_functions(
    tmp_path: Path,
) -> None:
    """A three-layer package whose only faults are imports inside functions: a cycle
    low.first ↔ low.second, and low.up importing the top layer."""
    code = tmp_path / "code"
    _write_package(
        code,
        {
            "high/__init__.py": "",
            "mid/__init__.py": "",
            "low/__init__.py": "",
            "low/first.py": """
                def second_value():
                    from low import second

                    return second.VALUE
                """,
            "low/second.py": """
                VALUE = 1


                def first_value():
                    from low.first import second_value

                    return second_value()
                """,
            "low/up.py": """
                def reach_up():
                    import high

                    return high
                """,
        },
    )
    result = lint_imports(config(("high", "mid", "low")), cwd=code, tmp_path=tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode == 1, report
    assert "imports point down only: high -> mid -> low BROKEN" in report
    assert "low.up -> high" in report
    assert "no import cycle between sibling modules or packages BROKEN" in report
    assert "No cycles are allowed in low." in report
