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


def relative_to_root(text: str | None, data_root: Path | None) -> str | None:
    """*text* without the data root's absolute path: a path under it reads relative to it.

    A trial's error quotes the files it could not read, by the worker's absolute path
    (torchvision's, PIL's and the trainer's own messages); API clients see paths relative to
    the data root instead, never a machine's own layout. The worker applies it with its data
    root when it stores the error, the API again with the server's when it shows one.
    """
    if text is None or data_root is None:
        return text
    for root in sorted({str(data_root), str(data_root.expanduser().resolve())}, key=len)[::-1]:
        root = root.rstrip("/")
        text = text.replace(root + "/", "").replace(root, "<data root>")
    return text
