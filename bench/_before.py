"""The product as it was at an older commit, run beside today's: bench/pack.py's third side.

Issue 15's targets count its overhead cuts ("packed against unpacked ..., overhead cuts
included"), which help a trial alone as much as a pack, so a ratio of packed against
unpacked on today's code cannot show them. This module serves the older tree so its
unpacked study runs in the same benchmark as today's two modes:

- `checked_out(rev)`: `git archive REV | tar -x` into a temporary folder (removed on exit,
  an error included; nothing is registered in the repository, unlike a worktree).
- `running(tree)`: child processes started inside import that tree's `service`,
  `studies` and `trainer` from the same virtualenv: `PYTHONPATH=<tree>` puts it first,
  and `PYTHONSAFEPATH=1` keeps `python -m service ...` (the serve harness starts it with
  this checkout as its working directory, and `serve` starts its workers the same way)
  from putting the working directory ahead of it. The editable install's finder comes
  after sys.path, so it never answers for a name the tree has.
- `spec_for_tree(spec)`: the spec without the fields the older server does not know.
- `quick_rates(tree, spec, runs)`: bench/_grid_worker.py on that tree, in its own
  interpreter (the in-process harness of `bench/pack.py --quick`).

DEFAULT_BEFORE is 3255cce, the parent of 2398a36 ("packed trials, service side (issue 15)"),
the commit where a trial alone first ran issue 15's code: the lazily rendered curves PNG and
the per-process dataset cache landed there; the fast idle claim, the cheaper pruning reads,
channels-last, the allocator setting and the batched writes came after it. Its tree already
holds issue 15's first commits (131e11c train_packed, e6fadb7, 58f2819, cad454a), but those
only add the packed trainer, its tests and bench/pack_step.py: nothing an unpacked trial
runs. The last commit before any issue-15 commit, 738f104 (the parent of 131e11c), cannot
serve: the wave's parallel commits left its trainer/_loop.py importing a name
(`_checkpoint.BestBy`) that only 8328454 added, so its worker fails on import; the nearest
commit that runs, 9b92c1f, is 2 commits earlier again and lacks the other issues' commits
up to 2398a36 (the checkpoint kept per trial, the diagnoser's plan), which today's code pays
for and which are not issue 15's. 6a2fd88 (migration 0003, the wave's shared columns,
packed_with among them) is in all three: schema only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GRID_WORKER = ROOT / "bench" / "_grid_worker.py"

DEFAULT_BEFORE = "3255cce"
# Spec fields added since DEFAULT_BEFORE (its StudySpec forbids unknown fields): dropped
# from the spec its server is given. Every other field bench/pack.py sends it already had.
NEW_SPEC_FIELDS = ("max_pack",)


@dataclass(frozen=True)
class Tree:
    """An older commit's files, extracted."""

    rev: str  # as given
    commit: str  # the full hash it names
    subject: str
    path: Path

    def record(self) -> dict[str, str]:
        """What a result file keeps of it."""
        return {"rev": self.rev, "commit": self.commit, "subject": self.subject}


def _git(*args: str) -> str:
    done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def checked_out(rev: str) -> Iterator[Tree]:
    """*rev*'s tree in a temporary folder for the time of the block, then removed."""
    commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    subject = _git("log", "-1", "--format=%s", commit)
    with tempfile.TemporaryDirectory(prefix=f"sweepdoc-before-{rev[:12]}-") as tmp:
        archive = Path(tmp) / "tree.tar"
        _git("archive", "--format=tar", f"--output={archive}", commit)
        with tarfile.open(archive) as tar:
            tar.extractall(Path(tmp) / "tree", filter="data")
        archive.unlink()
        yield Tree(rev=rev, commit=commit, subject=subject, path=Path(tmp) / "tree")


def tree_env(tree: Tree) -> dict[str, str]:
    """The variables that make a child interpreter import *tree*'s packages (module doc)."""
    return {"PYTHONPATH": str(tree.path), "PYTHONSAFEPATH": "1"}


@contextmanager
def running(tree: Tree) -> Iterator[None]:
    """Child processes started in the block import *tree*'s code: the serve harness builds
    its children's environment from this process's (its SWEEPDOC_* variables aside)."""
    saved = {name: os.environ.get(name) for name in tree_env(tree)}
    os.environ.update(tree_env(tree))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def spec_for_tree(spec: dict[str, Any]) -> dict[str, Any]:
    """*spec* as the older server takes it: without NEW_SPEC_FIELDS."""
    return {key: value for key, value in spec.items() if key not in NEW_SPEC_FIELDS}


def quick_rates(
    tree: Tree, spec: dict[str, Any], warm_spec: dict[str, Any], runs: int, work: Path
) -> list[float]:
    """Trials per minute of *runs* studies of *spec* through one in-process worker of
    *tree*'s code (bench/_grid_worker.py in a fresh interpreter, after one untimed warm-up
    study of *warm_spec*)."""
    work.mkdir(parents=True)
    spec_path, warm_path = work / "spec.json", work / "warm.json"
    spec_path.write_text(json.dumps(spec_for_tree(spec)))
    warm_path.write_text(json.dumps(spec_for_tree(warm_spec)))
    done = subprocess.run(
        [sys.executable, str(GRID_WORKER), str(spec_path), str(work), str(runs), str(warm_path)],
        cwd=tree.path,
        env={**os.environ, **tree_env(tree)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"the grid at {tree.rev} failed ({done.returncode}):\n{done.stderr[-4000:]}"
        )
    rates: list[float] = json.loads(done.stdout.strip().splitlines()[-1])
    return rates
