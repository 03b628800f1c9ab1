"""`sweepdoc submit FILE [--follow]`: send a study file to the server, optionally watch it
(and its follow-up rounds) to the end."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.commands._chain import follow_chain
from service.commands._server import UrlOption, server_client
from service.render import FINISHED_STUDY
from studies.db import StudyStatus
from studies.errors import SpecError
from studies.spec import load_spec_file


def submit(
    file: Annotated[Path, typer.Argument(help="Study spec, YAML or JSON (see studies/examples/).")],
    follow_study: Annotated[
        bool,
        typer.Option(
            "--follow",
            help="Show live progress, then each trial's diagnosis; with follow_up.max_rounds, "
            "every round the server runs after it, to the end of the chain.",
        ),
    ] = False,
    url: UrlOption = None,
) -> None:
    """Queue the study in FILE on a sweepdoc server."""
    console = Console()
    err = Console(stderr=True)
    try:
        spec = load_spec_file(file)
    except SpecError as exc:
        err.print(f"[red]error:[/] {file}: invalid study spec", highlight=False)
        for field_error in exc.errors:
            err.print(f"  {field_error.field}: {field_error.message}", highlight=False)
        raise typer.Exit(2) from None
    study_id: int | None = None
    try:
        with server_client(url) as client:
            study = client.submit(spec)
            study_id = study.id
            console.print(
                f"submitted study {study.id} [bold]{study.name}[/] "
                f"({spec.trial_count()} trials): {client.base_url}/v1/studies/{study.id}\n"
                f"dashboard: {client.dashboard_url(study)}",
                highlight=False,
            )
            if not follow_study:
                return
            study = follow_chain(client, study, console)
    except KeyboardInterrupt:
        if study_id is not None:
            err.print(
                "stopped following; the study keeps running on the server "
                f"(`sweepdoc status {study_id}`)"
            )
        raise typer.Exit(130) from None
    if study.status in FINISHED_STUDY and study.status is not StudyStatus.COMPLETED:
        raise typer.Exit(1)
