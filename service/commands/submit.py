"""`sweepdoc submit` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `submit` command to *app*."""
