"""sweepdoc's HTTP API (FastAPI, under /v1) with the Optuna dashboard on the same server."""

from service.api.app import create_app

__all__ = ["create_app"]
