"""docker-compose.yml and the Dockerfile say what the code does.

There is no Docker engine on the machines this suite runs on, so the deployment files are
checked against the real CLI and settings instead: every command a container runs must parse
as a real `sweepdoc` subcommand with real options, every SWEEPDOC_* variable must be one the
settings read (and validate), and volumes, ports and the database URL must agree across
services.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer
import yaml
from typer.main import get_command

from service.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
SWEEPDOC_SERVICES = sorted(
    name for name, svc in SERVICES.items() if str(svc.get("image", "")).startswith("sweepdoc")
)
_INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Z0-9_]+)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}"
)
# What a user puts in .env for a required `${VAR:?message}` (a real token is longer).
_REQUIRED_VALUE = "a-value-from-dot-env-0123456789"


def _interpolate(value: str) -> str:
    """Compose's `${VAR:-default}` with nothing set, and `${VAR:?message}` set in .env."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("op") == ":?":
            return _REQUIRED_VALUE
        return match.group("arg") or ""

    return _INTERPOLATION.sub(substitute, value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    return {key: _interpolate(str(value)) for key, value in service["environment"].items()}


def _parse_sweepdoc_command(argv: list[str]) -> Any:
    """Parse argv exactly as the `sweepdoc` entry point would, without running it.

    Returns the subcommand's parsing context (its ``params`` hold the parsed options).
    """
    group: Any = get_command(app)
    subcommand = group.get_command(typer.Context(group), argv[0])
    assert subcommand is not None, f"`sweepdoc {argv[0]}` is not a sweepdoc command"
    return subcommand.make_context(argv[0], list(argv[1:]))


def test_the_sweepdoc_services_are_the_api_and_the_worker() -> None:
    assert SWEEPDOC_SERVICES == ["api", "worker"]
    # Each can build the image, so `up` never pulls sweepdoc:latest from a registry.
    for name in SWEEPDOC_SERVICES:
        assert SERVICES[name].get("build") == ".", name


@pytest.mark.parametrize("name", SWEEPDOC_SERVICES)
def test_each_command_is_a_real_subcommand_with_real_options(name: str) -> None:
    ctx = _parse_sweepdoc_command(SERVICES[name]["command"])
    assert ctx.command.name in {"serve", "worker"}


def test_the_api_serves_without_local_workers_and_the_worker_trains_on_the_gpu() -> None:
    api = _parse_sweepdoc_command(SERVICES["api"]["command"])
    worker = _parse_sweepdoc_command(SERVICES["worker"]["command"])
    assert (api.command.name, api.params["workers"]) == ("serve", "0")
    assert (worker.command.name, worker.params["device"]) == ("worker", "cuda")


@pytest.mark.parametrize("name", SWEEPDOC_SERVICES)
def test_every_variable_is_a_setting_and_validates(name: str) -> None:
    env = _environment(SERVICES[name])
    prefix = Settings.model_config.get("env_prefix", "")
    fields = {key.removeprefix(prefix).lower(): value for key, value in env.items()}
    unknown = sorted(set(fields) - set(Settings.model_fields))
    assert not unknown, f"{name}: variables no setting reads: {unknown}"
    assert all(key.startswith(prefix) for key in env), f"{name}: {sorted(env)}"
    Settings(**fields)  # raises on a value the settings would refuse at start-up


def test_both_sweepdoc_services_share_one_database_and_one_state_volume() -> None:
    api, worker = (_environment(SERVICES[name]) for name in ("api", "worker"))
    for key in ("SWEEPDOC_DATABASE_URL", "SWEEPDOC_HOME", "SWEEPDOC_DATA_DIR"):
        assert api[key] == worker[key], key
    home = api["SWEEPDOC_HOME"]
    mounts = [
        {tuple(volume.split(":")[:2]) for volume in SERVICES[name]["volumes"]}
        for name in ("api", "worker")
    ]
    state_mounts = [{src for src, dst in m if dst == home} for m in mounts]
    assert state_mounts[0] == state_mounts[1] and len(state_mounts[0]) == 1, (
        "the workers' artifacts (curve plots) must land where the dashboard reads them"
    )
    (state_volume,) = state_mounts[0]
    assert state_volume in COMPOSE["volumes"], f"named volume {state_volume!r} is not declared"
    data_dir = api["SWEEPDOC_DATA_DIR"]
    assert all(any(dst == data_dir for _, dst in m) for m in mounts), "data root not mounted"


def test_the_database_url_points_at_the_postgres_service_with_its_credentials() -> None:
    url = urlsplit(_environment(SERVICES["api"])["SWEEPDOC_DATABASE_URL"])
    postgres = _environment(SERVICES["postgres"])
    assert url.scheme == "postgresql+psycopg"
    assert url.hostname == "postgres" and url.port == 5432
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]
    for volume in SERVICES["postgres"]["volumes"]:
        assert volume.split(":")[0] in COMPOSE["volumes"]


@pytest.mark.parametrize("name", SWEEPDOC_SERVICES)
def test_sweepdoc_services_wait_for_a_healthy_database(name: str) -> None:
    assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])


def test_the_published_port_is_the_port_the_api_listens_on() -> None:
    api = _parse_sweepdoc_command(SERVICES["api"]["command"])
    (published,) = SERVICES["api"]["ports"]
    container_port = int(str(published).rsplit(":", 1)[1])
    assert container_port == api.params["port"]
    assert f"EXPOSE {container_port}" in (ROOT / "Dockerfile").read_text()


def test_the_api_listens_beyond_loopback_only_with_a_required_token() -> None:
    """`serve --host 0.0.0.0` refuses to start without a token, so compose must require one
    (`${SWEEPDOC_API_TOKEN:?…}` fails `docker compose up` with the message when it is unset)."""
    from service.commands.serve import check_exposure

    api = _parse_sweepdoc_command(SERVICES["api"]["command"])
    raw = str(SERVICES["api"]["environment"].get("SWEEPDOC_API_TOKEN", ""))
    required = re.fullmatch(r"\$\{SWEEPDOC_API_TOKEN:\?[^}]+\}", raw) is not None
    assert api.params["insecure"] or required, raw
    assert check_exposure(api.params["host"], has_token=required) is None


def test_each_worker_replica_reserves_a_gpu() -> None:
    deploy = SERVICES["worker"]["deploy"]
    assert deploy["replicas"] >= 1
    (device,) = deploy["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert device["count"] == 1


def _dockerfile_instruction(name: str) -> str:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    (line,) = [line for line in lines if line.startswith(f"{name} ")]
    return line.removeprefix(f"{name} ")


def test_the_image_runs_sweepdoc_as_a_non_root_user() -> None:
    assert yaml.safe_load(_dockerfile_instruction("ENTRYPOINT")) == ["sweepdoc"]
    assert _dockerfile_instruction("USER") not in {"root", "0"}
    default_command = yaml.safe_load(_dockerfile_instruction("CMD"))
    assert _parse_sweepdoc_command(default_command).command.name == "serve"


def test_a_misspelt_option_would_be_caught() -> None:
    """The parser the checks above rely on refuses what the CLI refuses."""
    with pytest.raises(Exception, match="No such option"):
        _parse_sweepdoc_command(shlex.split("worker --devcie cuda"))
    with pytest.raises(Exception, match="valid integer"):
        _parse_sweepdoc_command(shlex.split("serve --port eighty"))
    with pytest.raises(AssertionError, match="not a sweepdoc command"):
        _parse_sweepdoc_command(shlex.split("serv --port 8000"))
