"""`sweepdoc delete ID`: remove a finished or cancelled study and everything it stored."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from service.commands._server import UrlOption, server_client


def delete(
    study_id: Annotated[int, typer.Argument(min=1, help="The study's id (`sweepdoc status`).")],
    url: UrlOption = None,
) -> None:
    """Delete study ID (finished or cancelled): its trials, epochs, Optuna study and plots."""
    with server_client(url) as client:
        client.delete(study_id)
    Console().print(f"study {study_id} deleted", highlight=False)
