"""One module per `sweepdoc` subcommand, each a module-level typer command function that
service/cli.py registers on the app."""
