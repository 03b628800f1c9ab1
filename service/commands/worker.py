"""`sweepdoc worker` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `worker` command to *app*."""
