"""User paths (image folders, checkpoints) resolved inside the data root, and only there.

Torch-free on purpose: the study spec (studies.spec) checks paths with this same function
at submit time, and the layers that import the spec must not import torch.
"""

from __future__ import annotations

from pathlib import Path

from trainer._errors import DatasetError


class OutsideDataRoot(DatasetError):
    """A user path that is not a plain path inside the data root (``..``, absolute, a
    symlink leading out, a NUL character)."""


def resolve_inside(root: Path, relative: str) -> Path:
    """Resolve *relative* under *root*, refusing anything that ends up outside it.

    The one check of every user path (image folders, checkpoints; the study spec's checks
    call it too). ``..`` segments, absolute paths elsewhere and symlinks pointing out of the
    root are all caught by comparing fully resolved paths (symlinks followed). Messages
    quote the path as given and never the server's absolute paths: they reach API clients.
    """
    if "\x00" in relative:
        # The OS refuses it (ValueError deep in os.path): name the path instead.
        raise OutsideDataRoot(f"{relative!r} contains a NUL character; paths cannot")
    root_resolved = root.expanduser().resolve()
    candidate = (root_resolved / relative.strip()).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise OutsideDataRoot(
            f"{relative!r} resolves outside the data root (through '..', an absolute path "
            "or a symlink); it must lie inside the data root"
        )
    return candidate
