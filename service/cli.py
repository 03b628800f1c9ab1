"""The `sweepdoc` command line: one typer app, one module per subcommand."""

import sys

import typer
from pydantic import ValidationError

from service.commands import (
    cancel,
    delete,
    demo,
    diagnose,
    migrate,
    serve,
    status,
    submit,
    train,
    worker,
)

app = typer.Typer(
    name="sweepdoc",
    help="Learning-rate search and training diagnosis for convolutional networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# In the order `sweepdoc --help` lists them; each command's name is its function's.
for command in (
    demo.demo,
    serve.serve,
    worker.worker,
    submit.submit,
    status.status,
    cancel.cancel,
    delete.delete,
):
    app.command()(command)
app.command()(diagnose.diagnose)
app.command()(train.train)
app.command()(migrate.migrate)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        # A bad SWEEPDOC_* variable: one line each, never a traceback (nor the value: it may
        # be the token or a URL with its password).
        for error in exc.errors(include_input=False):
            name = "SWEEPDOC_" + ".".join(str(part) for part in error["loc"]).upper()
            reason = str(error["msg"]).removeprefix("Value error, ")
            print(f"error: {name}: {reason}", file=sys.stderr)
        raise SystemExit(2) from None
