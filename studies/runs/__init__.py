"""External runs: a user's own training loop (hand-written, Lightning, …) streams its epochs
to the server and gets the live verdict back (issue 16).

A run belongs to a project; each project is an Optuna study (``runs:<project>``) and each
run one of its trials, so the dashboard shows runs beside sweepdoc's own studies, and a
run's diagnosis has the shape of a trial's. ``_schemas`` (the wire shapes), ``_store``
(create, read, list, finish, diagnose), ``_epochs`` (one epoch: stored once, live check,
verdict), ``_optuna`` (the Optuna side, every write repeatable), ``_delete`` (a run, its
epochs and its Optuna trial).
"""

from studies.runs._delete import delete_run
from studies.runs._epochs import RunInputError, log_epoch
from studies.runs._optuna import study_name
from studies.runs._schemas import (
    EPOCH_KEYS,
    Action,
    EpochLog,
    RunCreate,
    RunDetail,
    RunPublic,
    Verdict,
)
from studies.runs._store import create_run, finish_run, get_run, list_runs, run_diagnosis

__all__ = [
    "EPOCH_KEYS",
    "Action",
    "EpochLog",
    "RunCreate",
    "RunDetail",
    "RunInputError",
    "RunPublic",
    "Verdict",
    "create_run",
    "delete_run",
    "finish_run",
    "get_run",
    "list_runs",
    "log_epoch",
    "run_diagnosis",
    "study_name",
]
