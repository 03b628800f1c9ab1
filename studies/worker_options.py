"""How one worker process runs (``WorkerOptions``): the service builds them from its settings
and flags, the worker (``studies.worker``) runs by them, and each trial it runs reads them
through ``studies.trial_run.WorkerContext``."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from studies.db import DEFAULT_STALE_AFTER_S
from studies.spec import SpecLimits
from trainer import DeviceName


class WorkerOptions(BaseModel):
    """How one worker process runs; the service builds it from its settings and flags."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str
    device: DeviceName = "auto"
    data_dir: Path
    artifacts_dir: Path
    name: str | None = Field(None, description="Default: host:pid.")
    poll_interval_s: float = Field(1.0, gt=0.0, description="Sleep between empty claims.")
    heartbeat_interval_s: float = Field(5.0, gt=0.0)
    stale_after_s: float = Field(
        DEFAULT_STALE_AFTER_S,
        gt=0.0,
        description="Heartbeat grace of this worker's trials, stored in each claimed slot: "
        "every reaper fails an attempt only once its heartbeat is older than this.",
    )
    max_trials: int | None = Field(None, ge=1, description="Exit after this many trials.")
    exit_when_idle: bool = Field(
        False, description="Exit once no slot is waiting or running anywhere."
    )
    torch_threads: int | None = Field(
        None, ge=1, description="torch.set_num_threads for CPU training; None = torch's choice."
    )
    max_artifact_bytes: int | None = Field(
        None, ge=0, description="Cap of the stored checkpoints' bytes (studies.checkpoints)."
    )
    max_pack: int | None = Field(
        None,
        ge=1,
        description="Most trials of one study this worker trains as one packed model; "
        "None = as the study's max_pack decides (studies.packing), 1 = never pack.",
    )
    spec_limits: SpecLimits = Field(
        default_factory=SpecLimits,
        description="The server's limits, which a follow-up round must fit (studies.chain).",
    )
    max_queued_studies: int | None = Field(
        None, ge=1, description="The server's queue limit, for a follow-up round's submission."
    )

    @property
    def worker_name(self) -> str:
        """The name this worker goes by (slots, heartbeats, connections): *name*, else host:pid."""
        return self.name or f"{socket.gethostname()}:{os.getpid()}"
