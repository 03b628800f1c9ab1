"""docs/architecture.md keeps up with the code: its diagram of who calls whom names every
module of studies/ and trainer/ and every module of service/ (its commands and routers
included), and every repository path the page names exists.

A module added without a place in the diagram, or a path renamed under the page, fails here
rather than leaving a newcomer a map of a structure that no longer exists.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "architecture.md"
DIAGRAM_START, DIAGRAM_END = "## Who calls whom", "## Where each fact lives"
# Folders whose modules and subpackages the diagram must name (packages count as one name:
# their private modules are listed in the diagram's "(package: …)" notes where they matter).
MAPPED_FOLDERS = (
    "service",
    "service/commands",
    "service/api/routers",
    "studies",
    "trainer",
)
# A repository path in backticks: a top-level folder of this repository, then a file or folder.
REPO_PATH = re.compile(r"`((?:service|studies|trainer|tests|bench|docs)/[\w./-]*)`")


def _diagram() -> str:
    text = PAGE.read_text(encoding="utf-8")
    return text[text.index(DIAGRAM_START) : text.index(DIAGRAM_END)]


def _modules(folder: Path) -> list[str]:
    """The names of *folder*'s modules and packages, ``__init__``/``__main__`` left out."""
    names = []
    for path in sorted(folder.iterdir()):
        is_module = path.suffix == ".py" and not path.name.startswith("__")
        if is_module or (path / "__init__.py").exists():
            names.append(path.stem)
    return names


def missing_from_diagram(diagram: str, root: Path, folders: tuple[str, ...]) -> list[str]:
    """The modules and packages of *folders* (under *root*) that *diagram* does not name."""
    words = set(re.findall(r"\w+", diagram))
    return [
        f"{folder}/{name}"
        for folder in folders
        for name in _modules(root / folder)
        if name not in words
    ]


def test_the_diagram_names_every_module() -> None:
    missing = missing_from_diagram(_diagram(), ROOT, MAPPED_FOLDERS)
    assert not missing, f"docs/architecture.md's diagram does not name: {missing}"


def test_every_path_the_page_names_exists() -> None:
    paths = set(REPO_PATH.findall(PAGE.read_text(encoding="utf-8")))
    assert len(paths) > 20, "the pattern no longer finds the page's paths"
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"


def test_a_module_or_package_left_out_of_the_diagram_is_reported(tmp_path: Path) -> None:
    layer = tmp_path / "layer"
    (layer / "named_package").mkdir(parents=True)
    (layer / "forgotten_package").mkdir()
    (layer / "not_a_package").mkdir()  # no __init__.py: data, not code
    for path in ("__init__.py", "named.py", "_private.py", "forgotten.py",
                 "named_package/__init__.py", "forgotten_package/__init__.py"):
        (layer / path).write_text("")
    diagram = "layer.named ─► layer._private, layer.named_package (package)"

    missing = missing_from_diagram(diagram, tmp_path, ("layer",))

    assert missing == ["layer/forgotten", "layer/forgotten_package"]
