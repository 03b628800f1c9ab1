"""The service tests' app fixtures (real app, real SQLite file), for the API tests here."""

from tests.service.conftest import api, settings, testclient_host

__all__ = ["api", "settings", "testclient_host"]
