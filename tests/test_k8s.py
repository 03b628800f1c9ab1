"""deploy/k8s renders, passes the Kubernetes schemas, and is wired the way the code needs.

There is no cluster on the machines this suite runs on, so each Kustomize overlay is rendered
with the real `kubectl kustomize`, every object is validated against the Kubernetes OpenAPI
schemas (kubernetes-validate, strict: an unknown or misspelt field fails), and the wiring is
checked against the real parts: container arguments parse as real `sweepdoc` commands, every
SWEEPDOC_* variable is a setting that validates, the Secrets come from the real
make-secrets.sh, the allowed `Host` names go through the real host check, and the migration
Job's command migrates a real SQLite file.

CloudNativePG's `Cluster` is a custom resource: no maintained validator bundles its schema (it
ships with the operator), so it is checked for the fields and types sweepdoc relies on, and
against the Secrets that make-secrets.sh writes for it.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import typer
import yaml
from sqlalchemy.engine import make_url
from typer.main import get_command

from service.api.hosts import AllowedHosts
from service.api.routers import health
from service.cli import app
from service.commands.serve import check_exposure
from service.settings import Settings
from studies import migrations

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
MAKE_SECRETS = K8S / "make-secrets.sh"
OVERLAYS = {
    "base": K8S / "base",
    "gpu": K8S / "overlays" / "gpu",
    "gpu-cloudnative-pg": K8S / "overlays" / "gpu-cloudnative-pg",
}
GPU_OVERLAYS = ("gpu", "gpu-cloudnative-pg")
WORKLOADS = {"sweepdoc-api", "sweepdoc-worker", "sweepdoc-migrate"}
CNPG_API_VERSION = "postgresql.cnpg.io/v1"
# The oldest Kubernetes the manifests are meant for (no field newer than it), and the newest
# schemas kubernetes-validate bundles.
SCHEMA_VERSIONS = ("1.30", kubernetes_validate.utils.latest_version())
# What the downward API gives the API pod in the checks below (a pod IP is a header value
# here: nothing is sent to it).
POD_IP = "10.244.3.17"
NAMESPACE = "ml"
# Variables that are not sweepdoc settings, and why they are set.
OTHER_VARIABLES = {
    "HOME": "caches of torch, matplotlib and CUDA on a writable volume",
    "POD_IP": "SWEEPDOC_ALLOWED_HOSTS names it (the kubelet's probes send it as Host)",
    "POD_NAMESPACE": "SWEEPDOC_ALLOWED_HOSTS names the Service's names in it",
}


def _find_kubectl() -> str | None:
    # scripts/system-deps.sh installs it into the virtualenv where the system has none.
    beside_python = Path(sys.executable).parent / "kubectl"
    return shutil.which("kubectl") or (str(beside_python) if beside_python.exists() else None)


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = _find_kubectl()
    if found is None:
        reason = "kubectl is not installed (`make system-deps` installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI must prove the manifests, never skip them
        pytest.skip(reason)
    version = json.loads(
        subprocess.run(
            [found, "version", "--client", "-o", "json"],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout
    )
    kustomize = version.get("kustomizeVersion", "v0")
    assert int(kustomize.lstrip("v").split(".")[0]) >= 5, (
        f"kubectl {version['clientVersion']['gitVersion']} has Kustomize {kustomize}; "
        "deploy/k8s needs Kustomize 5 (kubectl 1.27 or newer)"
    )
    return found


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    """Each overlay's objects, as `kubectl apply -k` would send them."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, path in OVERLAYS.items():
        result = subprocess.run(
            [kubectl, "kustomize", str(path)],
            capture_output=True, text=True, timeout=120,
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
        out[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def _make_secrets(
    kubectl: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    path = f"{Path(kubectl).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(MAKE_SECRETS), *args],
        capture_output=True, text=True, timeout=120,
        env={"PATH": path, "HOME": os.environ.get("HOME", "/tmp"), **(env or {})},
    )


def _secrets(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    assert result.returncode == 0, result.stderr
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(result.stdout) if doc}


def _decoded(secret: dict[str, Any]) -> dict[str, str]:
    return {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}


# An external URL as a user would give it (the script only copies it into the Secret).
EXTERNAL_URL = "postgresql+psycopg://sweepdoc:s3cret-pw@db.example:5432/sweepdoc"


@pytest.fixture(scope="session")
def secrets_by_variant(kubectl: str) -> dict[str, dict[str, dict[str, Any]]]:
    """make-secrets.sh's Secrets for an external database and for CloudNativePG."""
    return {
        "external": _secrets(_make_secrets(kubectl, env={"SWEEPDOC_DATABASE_URL": EXTERNAL_URL})),
        "cloudnative-pg": _secrets(_make_secrets(kubectl, "--cloudnative-pg")),
    }


def _by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The pod spec of each workload (Deployments and Jobs), by workload name."""
    return {
        o["metadata"]["name"]: o["spec"]["template"]["spec"]
        for o in objects
        if o["kind"] in ("Deployment", "Job")
    }


def _only_container(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    return container


def _dockerfile() -> str:
    return (ROOT / "Dockerfile").read_text()


def _image_env() -> dict[str, str]:
    """The Dockerfile's ENV (the values every container starts from)."""
    block = re.search(r"^ENV (.*?)(?:\n\n|\n[A-Z])", _dockerfile(), re.S | re.M)
    assert block is not None
    pairs = re.findall(r"(\w+)=(\S+)", block.group(1))
    return dict(pairs)


def _container_env(
    objects: list[dict[str, Any]],
    container: dict[str, Any],
    secrets: dict[str, dict[str, Any]] | None = None,
) -> dict[str, str]:
    """The environment the container's process sees: the image's ENV, then envFrom, then env
    (with `$(VAR)` expanded as the kubelet does, the downward API as in a pod)."""
    config_maps = _by_kind(objects, "ConfigMap")
    env = dict(_image_env())
    for source in container.get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    downward = {"status.podIP": POD_IP, "metadata.namespace": NAMESPACE}
    for item in container.get("env", []):
        if "value" in item:
            value = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], item["value"])
        elif "fieldRef" in item["valueFrom"]:
            value = downward[item["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            value = _decoded(secrets[ref["name"]])[ref["key"]] if secrets else "<secret>"
        env[item["name"]] = value
    return env


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings a process with *env* would start with (and refuse, as it would)."""
    for key in [k for k in os.environ if k.startswith("SWEEPDOC_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def _parse_sweepdoc_command(argv: list[str]) -> Any:
    """Parse argv exactly as the `sweepdoc` entry point would, without running it."""
    group: Any = get_command(app)
    subcommand = group.get_command(typer.Context(group), argv[0])
    assert subcommand is not None, f"`sweepdoc {argv[0]}` is not a sweepdoc command"
    return subcommand.make_context(argv[0], list(argv[1:]))


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    """The app behind the host check in tests that only ask it `allows(...)`."""


# --- rendering and the schemas -------------------------------------------------------------


def test_each_overlay_holds_the_api_workers_migration_and_storage(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    for name, objects in rendered.items():
        kinds = sorted((o["kind"], o["metadata"]["name"]) for o in objects)
        assert ("Deployment", "sweepdoc-api") in kinds, name
        assert ("Deployment", "sweepdoc-worker") in kinds, name
        assert ("Job", "sweepdoc-migrate") in kinds, name
        assert ("Service", "sweepdoc-api") in kinds, name
        clusters = [o for o in objects if o["kind"] == "Cluster"]
        assert len(clusters) == (name == "gpu-cloudnative-pg"), name


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_object_validates_against_the_kubernetes_schemas(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, version: str
) -> None:
    errors = []
    for obj in rendered[overlay]:
        if obj["apiVersion"] == CNPG_API_VERSION:
            continue  # a custom resource: test_the_cloudnative_pg_cluster_…
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(exc.message)
    assert not errors, "\n".join(errors)


def test_the_validator_catches_a_misspelt_field(rendered: dict[str, list[dict[str, Any]]]) -> None:
    # The check above would pass nothing if strict mode ignored unknown fields.
    deployment = json.loads(json.dumps(_by_kind(rendered["gpu"], "Deployment")["sweepdoc-worker"]))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 75
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, SCHEMA_VERSIONS[0], strict=True)


@pytest.mark.parametrize("version", SCHEMA_VERSIONS)
@pytest.mark.parametrize("variant", ["external", "cloudnative-pg"])
def test_the_secrets_script_output_validates(
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]], variant: str, version: str
) -> None:
    for secret in secrets_by_variant[variant].values():
        kubernetes_validate.validate(secret, version, strict=True)


def test_the_cloudnative_pg_cluster_has_the_fields_sweepdoc_relies_on(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    (cluster,) = _by_kind(rendered["gpu-cloudnative-pg"], "Cluster").values()
    assert cluster["apiVersion"] == CNPG_API_VERSION
    spec = cluster["spec"]
    assert set(spec) <= {"instances", "storage", "bootstrap", "postgresql"}, sorted(spec)
    assert isinstance(spec["instances"], int) and spec["instances"] >= 1
    assert re.fullmatch(r"\d+(Mi|Gi|Ti)", spec["storage"]["size"])
    initdb = spec["bootstrap"]["initdb"]
    assert set(initdb) == {"database", "owner", "secret"}
    assert all(isinstance(initdb[k], str) and initdb[k] for k in ("database", "owner"))
    assert set(initdb["secret"]) == {"name"}
    # The CRD types PostgreSQL parameters as a map of strings: a bare number is refused.
    parameters = spec["postgresql"]["parameters"]
    assert all(isinstance(v, str) for v in parameters.values()), parameters


# --- the database and the Secrets ----------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_api_workers_and_migration_read_the_database_url_from_one_secret_key(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    pods = _pod_specs(rendered[overlay])
    assert set(pods) == WORKLOADS
    refs = {}
    for name, pod in pods.items():
        env = {item["name"]: item for item in _only_container(pod)["env"]}
        refs[name] = tuple(
            sorted(env["SWEEPDOC_DATABASE_URL"]["valueFrom"]["secretKeyRef"].items())
        )
    assert len(set(refs.values())) == 1, refs


@pytest.mark.parametrize(
    ("overlay", "variant"),
    [("base", "external"), ("gpu", "external"), ("gpu-cloudnative-pg", "cloudnative-pg")],
)
def test_the_secrets_script_makes_every_secret_key_the_pods_read(
    rendered: dict[str, list[dict[str, Any]]],
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]],
    overlay: str,
    variant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secrets = secrets_by_variant[variant]
    for name, pod in _pod_specs(rendered[overlay]).items():
        container = _only_container(pod)
        for item in container["env"]:
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in _decoded(secrets[ref["name"]]), (name, ref)
        # With the Secrets' values, the process's settings validate as at start-up.
        settings = _settings(_container_env(rendered[overlay], container, secrets), monkeypatch)
        url = make_url(settings.resolved_database_url)
        assert (url.get_backend_name(), url.get_driver_name()) == ("postgresql", "psycopg")


def test_the_cloudnative_pg_url_reaches_the_cluster_as_its_owner(
    rendered: dict[str, list[dict[str, Any]]],
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]],
) -> None:
    (cluster,) = _by_kind(rendered["gpu-cloudnative-pg"], "Cluster").values()
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    secrets = secrets_by_variant["cloudnative-pg"]
    owner_secret = secrets[initdb["secret"]["name"]]
    assert owner_secret["type"] == "kubernetes.io/basic-auth"
    owner = _decoded(owner_secret)
    url = make_url(_decoded(secrets["sweepdoc"])["database-url"])
    # The operator's read-write Service is `<cluster>-rw`, on PostgreSQL's port.
    assert (url.host, url.port) == (f"{cluster['metadata']['name']}-rw", 5432)
    assert url.database == initdb["database"]
    assert url.username == owner["username"] == initdb["owner"]
    assert url.password == owner["password"] and len(owner["password"]) >= 32


def test_the_secrets_script_keeps_a_given_token_and_makes_a_strong_one_otherwise(
    kubectl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    given = "a-token-of-the-users-own-0123456789"
    kept = _secrets(
        _make_secrets(
            kubectl, env={"SWEEPDOC_DATABASE_URL": EXTERNAL_URL, "SWEEPDOC_API_TOKEN": given}
        )
    )
    assert _decoded(kept["sweepdoc"]) == {"database-url": EXTERNAL_URL, "api-token": given}
    made = [
        _decoded(_secrets(_make_secrets(kubectl, "--cloudnative-pg"))["sweepdoc"])["api-token"]
        for _ in range(2)
    ]
    assert made[0] != made[1], "each run must make a new random token"
    settings = _settings({"SWEEPDOC_API_TOKEN": made[0]}, monkeypatch)
    assert settings.api_token is not None


@pytest.mark.parametrize(
    ("env", "args", "reason"),
    [
        ({}, (), "SWEEPDOC_DATABASE_URL is not set"),
        ({"SWEEPDOC_DATABASE_URL": "sqlite:////data/sweepdoc.db"}, (), "postgresql+psycopg://"),
        ({"SWEEPDOC_DATABASE_URL": EXTERNAL_URL, "SWEEPDOC_API_TOKEN": "short"}, (), "16"),
        ({}, ("--no-such-option",), "usage"),
    ],
    ids=["no-url", "sqlite", "short-token", "unknown-option"],
)
def test_the_secrets_script_refuses_what_cannot_work(
    kubectl: str, env: dict[str, str], args: tuple[str, ...], reason: str
) -> None:
    result = _make_secrets(kubectl, *args, env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert reason in result.stderr


# --- the API: command, probes, names, token ------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_container_runs_a_real_sweepdoc_command_from_the_image(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", _dockerfile(), re.M)
    assert entrypoint is not None and json.loads(entrypoint.group(1)) == ["sweepdoc"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    commands = {}
    for name, pod in _pod_specs(rendered[overlay]).items():
        container = _only_container(pod)
        assert "command" not in container, f"{name}: keep the image's `sweepdoc` entrypoint"
        assert container["image"] == f"sweepdoc:{version}", name
        commands[name] = _parse_sweepdoc_command(container["args"])
    assert {n: c.command.name for n, c in commands.items()} == {
        "sweepdoc-api": "serve",
        "sweepdoc-worker": "worker",
        "sweepdoc-migrate": "migrate",
    }
    assert commands["sweepdoc-api"].params["workers"] == "0"  # workers are their own pods


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_the_api_probes_its_health_endpoints_on_the_port_it_serves(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    pod = _pod_specs(rendered[overlay])["sweepdoc-api"]
    container = _only_container(pod)
    serve = _parse_sweepdoc_command(container["args"])
    (port,) = container["ports"]
    assert port["containerPort"] == serve.params["port"]
    routes = {getattr(route, "path", None) for route in health.router.routes}
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["startupProbe"]["path"] == "/healthz"
    for kind, probe in probes.items():
        assert probe["path"] in routes, kind
        assert probe["port"] in (port["name"], port["containerPort"]), kind
        # No Host header of their own: the kubelet sends the pod's IP, allowed below.
        assert "httpHeaders" not in probe, kind
    (service,) = [
        s for s in _by_kind(rendered[overlay], "Service").values()
        if s["spec"]["selector"].items() <= pod_labels(rendered[overlay], "sweepdoc-api").items()
    ]
    (service_port,) = service["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])


def pod_labels(objects: list[dict[str, Any]], workload: str) -> dict[str, str]:
    deployment = _by_kind(objects, "Deployment")[workload]
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_the_api_answers_to_its_probes_and_service_names_and_needs_its_token(
    rendered: dict[str, list[dict[str, Any]]],
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]],
    overlay: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = rendered[overlay]
    container = _only_container(_pod_specs(objects)["sweepdoc-api"])
    env = _container_env(objects, container, secrets_by_variant["external"])
    settings = _settings(env, monkeypatch)
    # Its host check, as create_app installs it (names only; the port is never compared).
    hosts = AllowedHosts(_no_app, allowed=settings.allowed_hosts)
    (service,) = _by_kind(objects, "Service")
    port = 8000
    for name in (
        POD_IP,  # what the kubelet sends as Host in httpGet probes
        service,
        f"{service}.{NAMESPACE}",
        f"{service}.{NAMESPACE}.svc",
        f"{service}.{NAMESPACE}.svc.cluster.local",
    ):
        assert hosts.allows(f"{name}:{port}"), name
    assert not hosts.allows(f"evil.example:{port}")
    assert not hosts.allows(f"{service}.other-namespace.svc:{port}")
    # Listening on 0.0.0.0 is allowed because the token is set, and only because of it.
    serve = _parse_sweepdoc_command(container["args"])
    assert settings.api_token is not None
    assert check_exposure(serve.params["host"], has_token=True) is None
    assert check_exposure(serve.params["host"], has_token=False) is not None


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_variable_is_a_setting_or_says_why_it_is_there(
    rendered: dict[str, list[dict[str, Any]]],
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]],
    overlay: str,
) -> None:
    objects = rendered[overlay]
    prefix = Settings.model_config.get("env_prefix", "")
    for name, pod in _pod_specs(objects).items():
        container = _only_container(pod)
        env = _container_env(objects, container, secrets_by_variant["external"])
        set_here = set(env) - set(_image_env()) | {i["name"] for i in container["env"]}
        for key in set_here:
            if key.startswith(prefix):
                assert key.removeprefix(prefix).lower() in Settings.model_fields, (name, key)
            else:
                assert key in OTHER_VARIABLES, (name, key)


# --- non-root, storage, workers -------------------------------------------------------------


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_every_pod_runs_as_the_images_user_on_a_read_only_root(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    uid = re.search(r"useradd .*--uid (\d+)", _dockerfile())
    assert uid is not None
    objects = rendered[overlay]
    for name, pod in _pod_specs(objects).items():
        security = pod["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["runAsUser"] == int(uid.group(1)), name
        assert security["fsGroup"] == security["runAsGroup"] != 0, name
        container = _only_container(pod)
        own = container["securityContext"]
        assert own["allowPrivilegeEscalation"] is False, name
        assert own["readOnlyRootFilesystem"] is True, name
        assert own["capabilities"]["drop"] == ["ALL"], name
        assert not {"runAsUser", "privileged", "runAsNonRoot"} & set(own), name
        # Every folder the process writes to is a writable volume: its state folder and
        # $HOME (caches), and /tmp.
        writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
        env = _container_env(objects, container)
        for path in (env["SWEEPDOC_HOME"], env["HOME"], "/tmp"):
            assert any(path == m or path.startswith(m + "/") for m in writable), (name, path)


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_api_and_workers_share_one_read_write_many_state_volume(
    rendered: dict[str, list[dict[str, Any]]], overlay: str
) -> None:
    objects = rendered[overlay]
    pods = _pod_specs(objects)
    claims = {}
    for name in ("sweepdoc-api", "sweepdoc-worker"):
        pod = pods[name]
        container = _only_container(pod)
        env = _container_env(objects, container)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        state = volumes[mounts[env["SWEEPDOC_HOME"]]["name"]]
        data = mounts[env["SWEEPDOC_DATA_DIR"]]
        assert data.get("readOnly") is True, name
        claims[name] = state["persistentVolumeClaim"]["claimName"]
    assert claims["sweepdoc-api"] == claims["sweepdoc-worker"], claims
    claim = _by_kind(objects, "PersistentVolumeClaim")[claims["sweepdoc-api"]]
    # Pods on several nodes write it (plots, resume states): one node's disk will not do.
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


@pytest.mark.parametrize("overlay", list(OVERLAYS))
def test_workers_stop_within_their_grace_and_gpu_workers_hold_a_gpu_each(
    rendered: dict[str, list[dict[str, Any]]], overlay: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    objects = rendered[overlay]
    deployment = _by_kind(objects, "Deployment")["sweepdoc-worker"]
    pod = deployment["spec"]["template"]["spec"]
    container = _only_container(pod)
    # The kubelet's SIGTERM → SIGKILL wait is the worker's grace (what `serve` gives its own
    # workers, SWEEPDOC_SHUTDOWN_GRACE_S) plus the time to hand the trial back and exit.
    settings = _settings(_container_env(objects, container), monkeypatch)
    assert pod["terminationGracePeriodSeconds"] > settings.shutdown_grace_s
    worker = _parse_sweepdoc_command(container["args"])
    limits = container["resources"].get("limits", {})
    gpus_anywhere = [
        name for name, p in _pod_specs(objects).items()
        if "nvidia.com/gpu" in _only_container(p)["resources"].get("limits", {})
    ]
    if overlay in GPU_OVERLAYS:
        assert worker.params["device"] == "cuda"
        assert limits["nvidia.com/gpu"] == 1, "one GPU per worker pod: `--device cuda` is it"
        assert deployment["spec"]["replicas"] > 1
        assert gpus_anywhere == ["sweepdoc-worker"]
        # A surge pod would wait for a GPU that a full pool does not have.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0
    else:
        assert worker.params["device"] == "cpu" and gpus_anywhere == []


# --- the migration Job, run for real --------------------------------------------------------


@pytest.fixture
def migrate_job_run(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> Iterator[Any]:
    """Runs the Job's container command with its environment, the database URL swapped."""
    objects = rendered["base"]
    container = _only_container(_pod_specs(objects)["sweepdoc-migrate"])
    env = _container_env(objects, container)
    # The pod's /tmp is this test's own folder.
    env = {k: v.replace("/tmp", str(tmp_path)) for k, v in env.items()}

    def run(database_url: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service", *container["args"]],
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
            env={**env, "SWEEPDOC_DATABASE_URL": database_url,
                 "PATH": os.environ.get("PATH", "")},
        )

    yield run


def test_the_migration_job_migrates_a_real_database_once(
    migrate_job_run: Any, tmp_path: Path
) -> None:
    database = tmp_path / "sweepdoc.db"
    first = migrate_job_run(f"sqlite:///{database}")
    assert first.returncode == 0, first.stderr
    head = migrations.head_revision()
    assert f"migrated from empty to revision {head}" in first.stderr
    with sqlite3.connect(database) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        (revision,) = conn.execute(
            f"SELECT version_num FROM {migrations.VERSION_TABLE}"
        ).fetchone()
    assert revision == head
    assert {"sweepdoc_studies", "sweepdoc_trials"} <= tables  # sweepdoc's tables
    assert {"studies", "trials", "alembic_version"} <= tables  # Optuna's
    again = migrate_job_run(f"sqlite:///{database}")
    assert again.returncode == 0, again.stderr
    assert f"already at revision {head}" in again.stderr


def test_a_migration_that_cannot_reach_its_database_fails_without_the_password(
    migrate_job_run: Any,
) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    result = migrate_job_run("postgresql+psycopg://sweepdoc:hunter2-secret@127.0.0.1:1/sweepdoc")
    assert result.returncode == 1
    assert "cannot migrate" in result.stderr and "SWEEPDOC_DATABASE_URL" in result.stderr
    assert "hunter2-secret" not in result.stdout + result.stderr


# --- the API container, run for real --------------------------------------------------------


def test_the_api_container_serves_its_probes_and_names_with_the_token(
    rendered: dict[str, list[dict[str, Any]]],
    secrets_by_variant: dict[str, dict[str, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    """The API's args and environment from the manifest, as a real `sweepdoc serve` (its
    database a SQLite file, its port a free one): probes with the kubelet's Host, the
    Service's name, another site's name, and the token from the Secret."""
    objects = rendered["base"]
    container = _only_container(_pod_specs(objects)["sweepdoc-api"])
    secrets = secrets_by_variant["external"]
    env = _container_env(objects, container, secrets)
    env.update(
        SWEEPDOC_HOME=str(tmp_path / "home"),
        SWEEPDOC_DATA_DIR=str(tmp_path / "data"),
        SWEEPDOC_DATABASE_URL=f"sqlite:///{tmp_path / 'sweepdoc.db'}",
        HOME=str(tmp_path),
        PATH=os.environ.get("PATH", ""),
    )
    args = list(container["args"])
    manifest_port = int(args[args.index("--port") + 1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args[args.index("--port") + 1] = str(port)
    token = _decoded(secrets["sweepdoc"])["api-token"]
    service = f"sweepdoc-api.{NAMESPACE}.svc.cluster.local:{manifest_port}"
    log = tmp_path / "serve.log"
    with log.open("w") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "service", *args],
            env=env, cwd=tmp_path, stdout=log_file, stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:

            def get(path: str, host: str, **headers: str) -> httpx.Response:
                return client.get(path, headers={"Host": host, **headers})

            for _ in range(600):  # up to a minute for torch's import and the schema
                assert server.poll() is None, log.read_text()
                try:
                    alive = get("/healthz", f"{POD_IP}:{manifest_port}")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                pytest.fail(f"the API never answered:\n{log.read_text()}")
            # The liveness probe, with the Host the kubelet sends.
            assert alive.status_code == 200, alive.text
            ready = get("/readyz", f"{POD_IP}:{manifest_port}")
            # No worker runs here, yet the API pod is Ready: the manifest says an API-only
            # server takes studies into the durable queue while workers scale up.
            assert ready.status_code == 200, ready.text
            assert ready.json()["database"] is True and ready.json()["workers_seen"] == 0
            assert get("/v1/studies", service).status_code == 401
            authorized = get("/v1/studies", service, Authorization=f"Bearer {token}")
            assert authorized.status_code == 200, authorized.text
            refused = get("/healthz", f"evil.example:{manifest_port}")
            assert refused.status_code == 400 and refused.json()["code"] == "host_not_allowed"
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
