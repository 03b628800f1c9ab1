"""`sweepdoc delete ID`: remove a finished or cancelled study and everything it stored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from service.client import ApiError, client_for
from service.commands.submit import UrlOption


def delete(
    study_id: Annotated[int, typer.Argument(min=1, help="The study's id (`sweepdoc status`).")],
    url: UrlOption = None,
) -> None:
    """Delete study ID (finished or cancelled): its trials, epochs, Optuna study and plots."""
    try:
        with client_for(url) as client:
            client.delete(study_id)
    except ApiError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    Console().print(f"study {study_id} deleted", highlight=False)
