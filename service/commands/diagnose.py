"""`sweepdoc diagnose` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `diagnose` command to *app*."""
