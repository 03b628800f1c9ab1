"""`GET /v1/plugins`: the models and datasets a study can name besides the built-in ones.

Model plugins (`model: {arch: "plugin:<name>"}`) and dataset plugins (`dataset:
"plugin:<name>"`) are the packages installed where this server runs, found through their
entry points, with their options' JSON schema; torchvision's classification models are
named `torchvision:<name>`. The server checks specs against what is installed here, and
the workers train with what is installed there: both need the same packages.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from trainer import (
    PLUGIN_PREFIX,
    PluginDescription,
    PluginKind,
    describe_plugins,
    torchvision_models,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["plugins"])


class PluginPublic(BaseModel):
    """One installed plugin."""

    name: str = Field(description="The plugin's registered name.")
    use_as: str = Field(description='How a spec names it, e.g. `"plugin:tiny-cnn"`.')
    distribution: str | None = Field(description="The installed package that provides it.")
    version: str | None = Field(description="That package's version.")
    options_schema: dict[str, Any] | None = Field(
        description="JSON schema of its options (`model.options` or `data.dataset_options`); "
        "null: it takes none."
    )
    error: str | None = Field(
        description="Why it cannot be loaded (specs naming it are refused); null when it loads."
    )


class PluginsPublic(BaseModel):
    """What this server accepts besides sweepdoc's own models and datasets."""

    models: list[PluginPublic] = Field(description="Model plugins (`model.arch`).")
    datasets: list[PluginPublic] = Field(description="Dataset plugins (`dataset`).")
    torchvision_models: list[str] = Field(
        description="torchvision classification models, named `torchvision:<name>` in "
        "`model.arch` (built untrained; `model.weights_file` loads local weights)."
    )


def _public(plugin: PluginDescription) -> PluginPublic:
    entry = plugin.entry
    return PluginPublic(
        name=entry.name,
        use_as=f"{PLUGIN_PREFIX}{entry.name}",
        distribution=entry.distribution,
        version=entry.version,
        options_schema=plugin.options_schema,
        error=plugin.error,
    )


@router.get(
    "/plugins",
    response_model=PluginsPublic,
    operation_id="list_plugins",
)
def list_plugins() -> PluginsPublic:
    """The installed model and dataset plugins and the torchvision models, as this server
    sees them (its workers need the same packages installed)."""
    return PluginsPublic(
        models=[_public(p) for p in describe_plugins(PluginKind.MODEL)],
        datasets=[_public(p) for p in describe_plugins(PluginKind.DATASET)],
        torchvision_models=list(torchvision_models()),
    )


def warm_up() -> None:
    """Import the installed plugins and torchvision's model list once, in the background
    when the app starts (a daemon thread): both import torch, seconds on a small machine,
    which the first `GET /v1/plugins` or spec naming a plugin or a torchvision model would
    otherwise wait for. The API's own modules stay torch-free; this is the one place the
    server loads it unasked, and only to answer those requests at once."""
    try:
        for kind in PluginKind:
            describe_plugins(kind)
        torchvision_models()
    except Exception as exc:  # e.g. torchvision missing: the requests will say so themselves
        logger.warning("plugins: warming up failed: %s", exc)
