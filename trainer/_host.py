"""Process-wide settings a run applies to its host when it starts (``tune_host``).

On a CPU the one that matters is the C allocator. A training step of a small CNN frees and
reallocates the same few feature maps, gradients and workspaces every step, each 0.1–5 MB
(a packed network's: K times larger). glibc's malloc serves blocks above its mmap threshold
with fresh ``mmap`` calls and gives freed memory at the top of its heap back to the OS
beyond its trim threshold, so each step page-faults its tensors in again: on the
development CPU (bench/pack_step.py's steps, two threads, median of 40 steps in separate
processes) a five-member packed step of the digits CNN took 5.9–7.7 ms at width 32 and
3.4–5.4 ms at width 16 with glibc's defaults, and 4.9–6.3 / 2.5–2.9 ms with freed memory
kept for reuse (five separate networks: 6.9–9.3 / 5.2–6.2 ms either way). Keeping it costs
resident memory up to the largest step's working set, which the process holds during
training anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

import torch

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Serve blocks up to glibc's own ceiling for the mmap threshold on 64-bit hosts
# (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB) from the heap, and give free heap back to the OS only
# beyond 1 GiB: a training step's tensors are reused, not page-faulted in again.
_MMAP_THRESHOLD = 32 * 1024 * 1024
_TRIM_THRESHOLD = 1024 * 1024 * 1024


def tune_host(device: torch.device) -> None:
    """Settings for training on *device*, applied once per process (idempotent)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick the fastest kernels
    else:
        keep_freed_memory()


@cache
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse (see the module docstring); False
    where the C library is not glibc (macOS, musl), which keeps its own behaviour."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False  # not glibc: no mallopt to call
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success; a value it refuses leaves that setting as it was.
    return bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    )
