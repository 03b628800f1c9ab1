"""`sweepdoc train` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `train` command to *app*."""
