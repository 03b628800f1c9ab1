"""Response models of the studies layer (what the API and CLI show); never the table rows.

Values that may be non-finite (a diverged run's loss) are served as ``null``: JSON has no
NaN (``trainer.finite_or_none``). The database keeps the real values (studies.db.LosslessJSON).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from studies.db import StudyStatus, TrialState


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


T = TypeVar("T")


class Page(_Out, Generic[T]):
    """A list envelope: ``{"data": [...], "count": N}`` (count = all matches, not the page)."""

    data: list[T]
    count: int


class BestTrial(_Out):
    trial_id: int
    number: int
    lr: float
    value: float = Field(description="The objective: best val accuracy, or best val loss.")


class StudyPublic(_Out):
    id: int
    name: str
    status: StudyStatus
    spec: dict[str, Any]
    counts: dict[TrialState, int] = Field(description="Trials per state (every state listed).")
    best_trial: BestTrial | None
    progress: float = Field(ge=0.0, le=1.0, description="Finished trials / all trials.")
    created_at: datetime
    cancelled_at: datetime | None
    url: str = Field(description="Path of this study in the HTTP API.")
    optuna_study_name: str
    objective: str
    priority: int
    max_parallel: int
    trial_count: int


class TrialPublic(_Out):
    id: int
    study_id: int
    number: int
    state: TrialState
    params: dict[str, Any] = Field(description="`lr` and any extra dimensions; {} until sampled.")
    label: str | None
    confidence: float | None
    final_val_acc: float | None
    best_val_acc: float | None
    final_val_loss: float | None
    epochs_done: int
    attempt: int
    optuna_trial_number: int | None
    url: str


class AttemptPublic(_Out):
    attempt: int
    state: TrialState
    worker: str | None
    optuna_trial_number: int | None
    claimed_at: datetime | None
    finished_at: datetime
    error: str | None


class TrialDetail(TrialPublic):
    worker: str | None
    device: str | None
    claimed_at: datetime | None
    heartbeat_at: datetime | None
    finished_at: datetime | None
    duration_s: float | None
    error: str | None
    stop_reason: str | None
    best_epoch: int | None
    curves: dict[str, Any] = Field(description="The curves JSON; null for non-finite values.")
    epochs: list[dict[str, Any]] = Field(description="Every epoch record with health stats.")
    diagnosis: dict[str, Any] | None
    attempts: list[AttemptPublic]


class WorkerPublic(_Out):
    name: str
    host: str
    pid: int
    device: str
    started_at: datetime
    last_seen_at: datetime
    current_trial_id: int | None
    trials_done: int


class Readiness(_Out):
    ready: bool
    database: bool
    workers_seen: int = Field(description="Workers seen within the window.")
    worker_window_s: float
    workers: list[WorkerPublic]
    reason: str | None = Field(description="Why not ready; null when ready.")
