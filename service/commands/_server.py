"""What the commands that talk to a sweepdoc server share: the --url option, and the rule
that a refused or failed request ends the command with the server's message and exit code 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console

from service.client import ApiError, SweepdocClient, client_for

UrlOption = Annotated[
    str | None,
    typer.Option(help="Server URL (default: SWEEPDOC_URL, else http://127.0.0.1:8000)."),
]


@contextmanager
def server_client(url: str | None) -> Iterator[SweepdocClient]:
    """``client_for(url)``; an ApiError inside prints `error: ...` on stderr and exits 1."""
    try:
        with client_for(url) as client:
            yield client
    except ApiError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
