"""Response models of the studies layer (what the API and CLI show); never the table rows.

Each is validated straight from its table row (``from_row``: ``from_attributes``, the run's
numbers read through ``TrialRow.summary``), so no field is copied by hand. The same models
parse the API's JSON back in the CLI's client.

Values that may be non-finite (a diverged run's loss) are served as ``null``: JSON has no
NaN (``trainer.finite_or_none``). The database keeps the real values (studies.columns.LosslessJSON).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    AliasPath,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    computed_field,
)

from studies.db import StudyStatus, TrialState
from studies.diagnosis import Label
from studies.spec import Objective
from trainer import finite_or_none, json_safe

# A float that JSON can carry: NaN and ±inf become null.
JsonFloat = Annotated[float | None, AfterValidator(finite_or_none)]
# A JSON object whose non-finite floats (at any depth) become null.
JsonObject = Annotated[dict[str, Any], BeforeValidator(json_safe)]

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class _RowWith:
    """A table row's attributes, plus values derived from it at read time (``from_row``)."""

    def __init__(self, row: object, derived: dict[str, Any]) -> None:
        self._row = row
        self._derived = derived

    def __getattr__(self, name: str) -> Any:
        if name in self._derived:
            return self._derived[name]
        return getattr(self._row, name)


def from_row(model: type[M], row: object, **derived: Any) -> M:
    """*model* validated from *row*'s attributes; *derived* gives the fields the row does not
    hold (a study's status and counts, a trial's curves)."""
    return model.model_validate(_RowWith(row, derived), from_attributes=True)


def _summary_field(name: str) -> Any:
    """A field read from ``TrialRow.summary.<name>`` (the API's JSON has it at top level)."""
    return Field(default=None, validation_alias=AliasChoices(name, AliasPath("summary", name)))


def api_path(collection: str, noun: str) -> Any:
    """The read-only ``url`` of a resource: its path in the HTTP API, ``/v1/<collection>/<id>``
    (one definition for studies, trials and runs). A computed field, so declared
    ``url: ClassVar[str] = api_path(...)``: pydantic serializes it and never reads it as input."""

    def url(self: Any) -> str:
        return f"/v1/{collection}/{self.id}"

    return computed_field(description=f"Path of this {noun} in the HTTP API.")(property(url))


def _empty_if_none(value: Any) -> Any:
    return {} if value is None else value


def _no_items_if_none(value: Any) -> Any:
    return [] if value is None else value


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True, use_attribute_docstrings=True)


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
    optuna_study_name: str
    objective: Objective
    priority: int
    max_parallel: int
    trial_count: int
    lr_range: JsonObject | None = None
    """An LR range test's result (search.sampler range_test; null otherwise or until it ran):
    lrs, losses, smoothed, suggestion, rule, reason, ..."""
    round: int = Field(description="Its round in a follow-up chain (1: submitted by a user).")
    parent_id: int | None = Field(description="The round before it (null for round 1).")
    follow_up_id: int | None = Field(description="The round the server submitted after it.")
    chain_reason: str | None = Field(
        description="Why the next round was taken or the loop stopped here (null: undecided)."
    )

    url: ClassVar[str] = api_path("studies", "study")


class ChainRound(_Out):
    """One round of a follow-up chain, with its best trial and why the loop went on or stopped."""

    id: int
    name: str
    round: int
    status: StudyStatus
    best_trial_id: int | None
    best_label: Label | None
    objective: Objective
    best_value: float | None = Field(description="The objective's best value (best trial).")
    chain_reason: str | None


class Chain(_Out):
    """Every round of a follow-up chain, first to last."""

    rounds: list[ChainRound]


class TrialPublic(_Out):
    id: int
    study_id: int
    number: int
    state: TrialState
    params: Annotated[dict[str, Any], BeforeValidator(_empty_if_none)] = Field(
        description="`lr` and any extra dimensions; {} until sampled."
    )
    label: Label | None
    confidence: float | None
    final_val_acc: JsonFloat = _summary_field("final_val_acc")
    best_val_acc: JsonFloat = _summary_field("best_val_acc")
    final_val_loss: JsonFloat = _summary_field("final_val_loss")
    epochs_done: int
    attempt: int
    optuna_trial_number: int | None

    url: ClassVar[str] = api_path("trials", "trial")


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
    best_epoch: int | None = _summary_field("best_epoch")
    curves: dict[str, Any] = Field(description="The curves JSON; null for non-finite values.")
    epochs: list[JsonObject] = Field(description="Every epoch record with health stats.")
    diagnosis: JsonObject | None
    attempts: list[AttemptPublic]
    lr_range: JsonObject | None = None
    """The LR range test's result (range_test studies only)."""
    checkpoint_epoch: int | None = None
    """The epoch of the stored checkpoint (GET /v1/trials/{id}/checkpoint); null when none is
    stored (`warnings` says why)."""
    checkpoint_bytes: int | None = None
    """Its size in bytes."""
    warnings: Annotated[list[str], BeforeValidator(_no_items_if_none)] = Field(
        default_factory=list,
        description="What did not fail the trial but should be known (e.g. its checkpoint "
        "skipped because the artifact store is full).",
    )
    packed_with: Annotated[list[int], BeforeValidator(_no_items_if_none)] = Field(
        default_factory=list,
        description="The trials this attempt trained with as one packed model (issue 15); "
        "[] when it trained alone.",
    )


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
