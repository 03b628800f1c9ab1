"""`sweepdoc serve` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `serve` command to *app*."""
