"""sweepdoc's top layer: settings, the HTTP API, the CLI and process supervision."""
