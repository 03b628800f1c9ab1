"""How many slots of one study a worker trains as one packed model (issue 15).

The study's ``max_pack`` (``auto`` or a number) and the worker's own limit
(``SWEEPDOC_WORKER_MAX_PACK``, ``WorkerOptions.max_pack``) both cap it; 1 means each trial
trains alone, as before packing existed. ``auto``:

- on a GPU, as many as ``trainer.estimate_pack_bytes`` says fit in 80 % of the free
  device memory, at most ``GPU_AUTO_CAP``: one small CNN leaves a GPU mostly idle, K of them
  fill it (HFTA reports up to 15× the throughput);
- on a CPU, ``CPU_AUTO_CAP`` when the network's first stage is at most
  ``CPU_MAX_PACKED_WIDTH`` channels wide and its images are known to be at most
  ``CPU_MAX_PACKED_IMAGE`` pixels on a side, else 1: where it is measured faster. On the
  2-core development CPU, both trainers channels-last (docs/benchmarks.md 2b, bench/pack.py
  at 3cdd123): the digits (8×8) at width 16 train 1.3–1.8× the epochs a minute packed, at
  width 32 1.1–1.3× (short of the gain the rule asks for); MNIST (28×28) is slower packed at
  both widths (0.9–1.0× at 16, 0.5–0.65× at 32; one packed step per member 0.6–0.9× and
  0.5–0.9× of a separate network's, worse the larger the pack), where the arithmetic, not
  the per-operator overhead, is the time, and the fused maps outgrow the caches.

A range test trains alone. The trainer has the last word (``trainer.can_pack``): a study
whose configs cannot share one packed model (a plugin or torchvision network, ...) trains
alone whatever ``max_pack`` says, and so do members whose sampled parameters turn out to
differ in more than optimizer settings (``studies.pack_run``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from studies.spec import Sampler, StudySpec

if TYPE_CHECKING:
    from trainer import RunConfig

GPU_AUTO_CAP = 16
CPU_AUTO_CAP = 8
CPU_MAX_PACKED_WIDTH = 16
# Image side up to which packing is measured faster on a CPU (the digits' 8; MNIST's 28 is not).
CPU_MAX_PACKED_IMAGE = 8
# Share of the free GPU memory a pack may plan for (the rest: allocator slack, cuDNN).
_GPU_MEMORY_SHARE = 0.8
# Two learning rates standing for any two members when asking whether a study packs.
_PROBE_LRS = (0.1, 0.01)


def pack_limit(spec: StudySpec, *, device: str, worker_max: int | None, data_dir: Path) -> int:
    """The most slots of *spec*'s study to train as one packed model on *device* (≥ 1).

    *worker_max*: the worker's own cap (None: no cap of its own, ``auto`` decides)."""
    if spec.search.sampler is Sampler.RANGE_TEST:
        return 1  # one trial that ramps its rate: nothing to pack it with
    study_max = spec.max_pack
    caps = [c for c in (worker_max, None if study_max == "auto" else study_max) if c is not None]
    if caps and min(caps) <= 1:
        return 1
    from trainer import can_pack

    probes = [spec.to_run_config({"lr": lr}, data_dir=data_dir, device=device) for lr in _PROBE_LRS]
    if can_pack(probes) is not None:
        return 1
    if study_max == "auto":
        caps.append(_auto_limit(probes[0], device))
    return max(1, min(caps))


def _auto_limit(config: RunConfig, device: str) -> int:
    if not device.startswith("cuda"):
        from trainer import known_image_side

        side = known_image_side(config)
        small = side is not None and side <= CPU_MAX_PACKED_IMAGE
        return CPU_AUTO_CAP if small and config.model.width <= CPU_MAX_PACKED_WIDTH else 1
    import torch

    from trainer import estimate_pack_bytes

    free, _total = torch.cuda.mem_get_info(torch.device(device))
    budget = free * _GPU_MEMORY_SHARE
    fitting = 1
    for k in range(2, GPU_AUTO_CAP + 1):
        if estimate_pack_bytes(config, k) > budget:
            break
        fitting = k
    return fitting
