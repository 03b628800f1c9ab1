"""`sweepdoc demo` (being built; see docs/architecture.md)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the `demo` command to *app*."""
