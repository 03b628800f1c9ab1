"""Users' own models and datasets, as installed Python packages (entry points).

A package installed where sweepdoc runs (the API server and every worker) registers
objects under two entry-point groups; each object is usually a module:

- ``sweepdoc.models``: ``build(config: ModelConfig, num_classes: int, in_channels: int)
  -> nn.Module`` mapping (N, in_channels, H, W) images to (N, num_classes) logits;
- ``sweepdoc.datasets``: ``load(config: DataConfig) -> PluginDataset`` (train and optional
  val splits as tensors or torch ``Dataset``\\s, plus the class names).

The protocols and ``PluginDataset`` are in trainer._plugin_api (they name torch types).

Either may declare ``Options``, a pydantic model of its own options; the spec's
``model.options`` / ``data.dataset_options`` are validated against it (errors name the
field, e.g. ``model.options.hidden``) and stored with its defaults filled in, so
``config.options`` / ``config.dataset_options`` reach the plugin already valid.

Only installed entry points are reachable: a spec names a plugin by its registered name,
never by a module path, so nothing an HTTP client sends is ever imported. Discovery and
loading are cached per process; a plugin that fails to import is reported by name with the
error's type and message (a ``PluginError``), never a traceback.

Torch-free (no torch import, not even for type checking): the configs call into this module
when they validate, and they are imported by code that must not load torch
(studies.diagnosis); a plugin's own module may import it when the plugin is loaded.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ValidationError

from trainer._errors import ConfigError

PLUGIN_PREFIX = "plugin:"


class PluginKind(StrEnum):
    """What a plugin provides; each kind has its own entry-point group."""

    MODEL = "model"
    DATASET = "dataset"

    @property
    def group(self) -> str:
        """The entry-point group a package registers this kind under."""
        return f"sweepdoc.{self.value}s"


class PluginError(ConfigError):
    """A plugin that is not installed, cannot be loaded, or breaks its contract; the
    message names the plugin."""


@dataclass(frozen=True)
class PluginEntry:
    """One registered plugin, as its package declares it (nothing imported yet)."""

    kind: PluginKind
    name: str
    target: str  # the entry point's "module:attribute"
    distribution: str | None  # the installed package that registers it
    version: str | None

    @property
    def origin(self) -> str:
        """``name (distribution version)``: how messages refer to the plugin."""
        if self.distribution is None:
            return repr(self.name)
        return f"{self.name!r} ({self.distribution} {self.version})"


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin's object, imported, with its options model (None: it takes no options)."""

    entry: PluginEntry
    obj: Any
    options_model: type[BaseModel] | None


@functools.cache
def installed(kind: PluginKind) -> dict[str, PluginEntry]:
    """Every plugin of *kind* installed in this environment, by name (read once per
    process: installing a plugin needs a restart, of the server and the workers alike)."""
    found: dict[str, PluginEntry] = {}
    for point in importlib.metadata.entry_points(group=kind.group):
        dist = point.dist
        entry = PluginEntry(
            kind=kind,
            name=point.name,
            target=point.value,
            distribution=None if dist is None else dist.name,
            version=None if dist is None else dist.version,
        )
        # Two packages under one name: the first in sorted order wins, every time, so the
        # server and its workers (same packages) agree on which one runs.
        if point.name not in found or entry.target < found[point.name].target:
            found[point.name] = entry
    return dict(sorted(found.items()))


def installed_names(kind: PluginKind) -> str:
    """The installed plugins of *kind* as a phrase for error messages."""
    entries = installed(kind)
    if not entries:
        return (
            f"none is installed (a plugin is a package that registers the {kind.group!r} "
            "entry point, installed on the server and on every worker)"
        )
    return "installed: " + ", ".join(e.origin for e in entries.values())


@functools.cache
def load_plugin(kind: PluginKind, name: str) -> LoadedPlugin:
    """Import the installed plugin *name* of *kind* (once per process).

    Raises PluginError naming the plugin: unknown (listing the installed ones), failing to
    import, or lacking the function its kind needs, or an ``Options`` that is not a
    pydantic model.
    """
    entry = installed(kind).get(name)
    if entry is None:
        raise PluginError(f"unknown {kind.value} plugin {name!r}; {installed_names(kind)}")
    try:
        obj = importlib.metadata.EntryPoint(name, entry.target, kind.group).load()
    except Exception as exc:  # any import-time failure of third-party code, reported by name
        raise PluginError(
            f"{kind.value} plugin {entry.origin} cannot be loaded from {entry.target}: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    needed = "build" if kind is PluginKind.MODEL else "load"
    if not callable(getattr(obj, needed, None)):
        raise PluginError(
            f"{kind.value} plugin {entry.origin}: {entry.target} has no {needed}() function"
        )
    options = getattr(obj, "Options", None)
    if options is not None and not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise PluginError(
            f"{kind.value} plugin {entry.origin}: its Options must be a pydantic model class, "
            f"got {options!r}"
        )
    return LoadedPlugin(entry, obj, options)


def plugin_name(value: str) -> str | None:
    """The plugin name of ``plugin:<name>``, or None for any other value."""
    if not value.startswith(PLUGIN_PREFIX):
        return None
    return value.removeprefix(PLUGIN_PREFIX)


def require_installed(kind: PluginKind, name: str) -> None:
    """ValueError (what pydantic validators raise) unless plugin *name* of *kind* is
    installed and loads."""
    try:
        load_plugin(kind, name)
    except PluginError as exc:
        raise ValueError(str(exc)) from exc


def options_from_text(value: Any) -> Any:
    """Options given as JSON text (``sweepdoc train --options '{"hidden": 8}'``) as a dict;
    anything else as it is, for the field's own validation."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"must be a JSON object, got {value!r} ({exc.msg})") from exc


def validated_options(
    kind: PluginKind, name: str, options: dict[str, Any] | None
) -> dict[str, Any] | None:
    """*options* checked against plugin *name*'s ``Options`` and returned as plain JSON with
    its defaults filled in (None when it takes no options and got none).

    Raises ValueError (what pydantic validators raise) whose message starts with the
    offending option ("hidden: Input should be ...", several joined by "; "), so the
    caller's location plus this names the field; or saying why the plugin cannot be loaded.
    """
    try:
        plugin = load_plugin(kind, name)
    except PluginError as exc:
        raise ValueError(str(exc)) from exc
    if plugin.options_model is None:
        if options:
            raise ValueError(
                f"{kind.value} plugin {plugin.entry.origin} takes no options, got "
                f"{sorted(options)}"
            )
        return None
    try:
        parsed = plugin.options_model.model_validate(options or {})
    except ValidationError as exc:
        reasons = []
        for err in exc.errors(include_url=False):
            where = ".".join(str(part) for part in err["loc"]) or "options"
            message = str(err["msg"]).removeprefix("Value error, ")
            given = "" if err["type"] == "missing" else f", got {err['input']!r}"
            reasons.append(f"{where}: {message}{given}")
        raise ValueError("; ".join(reasons)) from exc
    # By alias: the stored options are validated again whenever the spec is read back.
    dumped: dict[str, Any] = parsed.model_dump(mode="json", by_alias=True)
    return dumped


@dataclass(frozen=True)
class PluginDescription:
    """One installed plugin as ``GET /v1/plugins`` shows it: where it comes from, and the
    JSON schema of its options (None: it takes none), or why it cannot be loaded."""

    entry: PluginEntry
    options_schema: dict[str, Any] | None
    error: str | None


def describe_plugins(kind: PluginKind) -> list[PluginDescription]:
    """Every installed plugin of *kind*, loaded to read its options' schema."""
    described = []
    for name, entry in installed(kind).items():
        try:
            plugin = load_plugin(kind, name)
        except PluginError as exc:
            described.append(PluginDescription(entry, None, str(exc)))
            continue
        schema = None if plugin.options_model is None else plugin.options_model.model_json_schema()
        described.append(PluginDescription(entry, schema, None))
    return described
