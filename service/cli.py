"""The `sweepdoc` command line: one typer app, one module per subcommand."""

import importlib
import sys
from typing import Any

import typer
from pydantic import ValidationError

# Every subcommand, in the order `sweepdoc --help` lists them: (name, module). Each module holds
# a module-level typer command function of the same name.
COMMANDS: tuple[tuple[str, str], ...] = (
    ("demo", "service.commands.demo"),
    ("serve", "service.commands.serve"),
    ("worker", "service.commands.worker"),
    ("submit", "service.commands.submit"),
    ("status", "service.commands.status"),
    ("cancel", "service.commands.cancel"),
    ("delete", "service.commands.delete"),
    ("export", "service.commands.export"),
    ("diagnose", "service.commands.diagnose"),
    ("train", "service.commands.train"),
    ("lr-find", "service.commands.lr_find"),
    ("migrate", "service.commands.migrate"),
)


def build_app(only: str | None = None) -> typer.Typer:
    """The `sweepdoc` app with every command, or with the one named *only*.

    Why one: importing a command imports what it needs (the server's commands pull in
    Optuna, SQLAlchemy, matplotlib and more, over a second), and `sweepdoc diagnose` must
    answer in about a second without any of them. So `main` imports only the command that
    runs; `--help` and an unknown command get the full app.
    """
    app = typer.Typer(
        name="sweepdoc",
        help="Learning-rate search and training diagnosis for convolutional networks.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _group() -> None:
        # A callback keeps the app a group even with one command registered, so the
        # command is still called by its name.
        """Learning-rate search and training diagnosis for convolutional networks."""

    for name, module in COMMANDS:
        if only is None or name == only:
            # A command's function is its name in Python (lr-find: lr_find).
            function = getattr(importlib.import_module(module), name.replace("-", "_"))
            app.command(name)(function)
    return app


def __getattr__(name: str) -> Any:
    # `from service.cli import app` (tests, tools) gets the full app, built on first use.
    if name == "app":
        return build_app()
    raise AttributeError(f"module 'service.cli' has no attribute {name!r}")


def main() -> None:
    """Console-script entry point."""
    requested = sys.argv[1] if len(sys.argv) > 1 else None
    app = build_app(requested if requested in dict(COMMANDS) else None)
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
