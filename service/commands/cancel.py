"""`sweepdoc cancel ID`: stop a study; waiting trials never start, running ones stop soon."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from service.commands._server import UrlOption, server_client
from service.render import study_line
from studies.db import TrialState


def cancel(
    study_id: Annotated[int, typer.Argument(min=1, help="The study's id (`sweepdoc status`).")],
    url: UrlOption = None,
) -> None:
    """Cancel study ID: waiting trials never start, running ones stop at their next epoch."""
    with server_client(url) as client:
        study = client.cancel(study_id)
    console = Console()
    console.print(study_line(study), highlight=False)
    if study.counts.get(TrialState.RUNNING):
        console.print(
            "its running trials stop at their next epoch; `sweepdoc delete "
            f"{study_id}` works once they have",
            highlight=False,
        )
