"""`sweepdoc status [ID]`: the studies on a server, or one study with its trials."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from service.commands._chain import chain_table, in_a_chain
from service.commands._server import UrlOption, server_client
from service.render import print_study_report, studies_table, study_line
from studies.db import StudyStatus


def status(
    study_id: Annotated[
        int | None, typer.Argument(min=1, help="A study id; omit to list studies.")
    ] = None,
    state: Annotated[
        StudyStatus | None,
        typer.Option("--status", help="List only studies in this state."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="Studies to list.")] = 20,
    url: UrlOption = None,
) -> None:
    """Show the latest studies, or study ID with each trial's state, label and evidence
    (and its follow-up chain: every round, its best trial and why the loop went on)."""
    console = Console()
    with server_client(url) as client:
        if study_id is None:
            page = client.studies(status=state, limit=limit)
            console.print(studies_table(page.data))
            if page.count > len(page.data):
                console.print(f"({len(page.data)} of {page.count} studies shown)")
            return
        study = client.study(study_id)
        console.print(study_line(study), highlight=False)
        print_study_report(client, study, console)
        if in_a_chain(study):
            console.print(chain_table(client.study_chain(study_id)))
        console.print(f"dashboard: {client.dashboard_url(study)}", highlight=False)
