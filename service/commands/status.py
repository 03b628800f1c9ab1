"""`sweepdoc status` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `status` command to *app*."""
