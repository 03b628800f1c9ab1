"""What the two fitting scripts (fit_arbiter.py, calibrate.py) share: the half they read,
their command line and how a fitted model is saved — one definition each."""

from __future__ import annotations

import argparse
from pathlib import Path

from pydantic import BaseModel

SPLIT = "train"  # both fits read the training half only; the held-out half is evaluate.py's


def dry_run_requested(doc: str, written: Path) -> bool:
    """The command line of a script that fits *written* on the training half: its --help
    (the first line of *doc*), and --dry-run (fit and print, write nothing)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true",
                        help=f"fit and print, but leave {written.name} as it is")
    return bool(parser.parse_args().dry_run)


def save_fitted(model: BaseModel, written: Path, *, dry_run: bool) -> None:
    """Write the fitted *model* to *written* as indented JSON, unless this is a dry run."""
    if dry_run:
        print(f"dry run: {written} left as it is")
        return
    written.write_text(model.model_dump_json(indent=1) + "\n", encoding="utf-8")
    print(f"wrote {written}")
