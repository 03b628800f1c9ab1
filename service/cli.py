"""The `sweepdoc` command line: one typer app, one module per subcommand."""

import typer

from service.commands import demo, diagnose, serve, status, submit, train, worker

app = typer.Typer(
    name="sweepdoc",
    help="Learning-rate search and training diagnosis for convolutional networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for command_module in (demo, serve, worker, submit, status, diagnose, train):
    command_module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()
