"""One module per `sweepdoc` subcommand; each exposes ``register(app)``."""
