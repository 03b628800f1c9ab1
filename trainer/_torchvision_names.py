"""Which torchvision classification models ``arch: "torchvision:<name>"`` may name.

Torch-free at import, for the configs that check the names: they are imported by code that
must not load torch (studies.diagnosis; the API validating a spec that names no torchvision
model). torchvision itself is imported by name, on the first check of a torchvision arch.
"""

from __future__ import annotations

import difflib
import functools
import importlib

TORCHVISION_PREFIX = "torchvision:"

# Classification models whose classifier is a convolution, not a Linear layer: they do not
# split into features and a linear head (trainer._torchvision), so they are not offered.
_CONV_CLASSIFIERS = frozenset({"squeezenet1_0", "squeezenet1_1"})


@functools.cache
def torchvision_models() -> tuple[str, ...]:
    """The classification models sweepdoc can build, by torchvision name (imports
    torchvision, once per process)."""
    models = importlib.import_module("torchvision.models")
    names = models.list_models(module=models)
    return tuple(sorted(n for n in names if n not in _CONV_CLASSIFIERS))


def check_torchvision_name(name: str) -> str:
    """*name* if it is a model of :func:`torchvision_models`, else ValueError listing the
    closest names."""
    known = torchvision_models()
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "GET /v1/plugins lists them"
    raise ValueError(f"unknown torchvision classification model {name!r}; {hint}")
