"""Everything the API and the CLI read or write, as plain functions over a Database.

Each function is a few short transactions and returns response models (studies.schemas),
never table rows. One module per concern: ``_submit`` (a submission as one unit of work,
the queue limit checked under a lock), ``_studies`` (list, get, cancel, the best trial),
``_delete`` (a finished or cancelled study removed, rows, Optuna study and files),
``_cleanup`` (a study's Optuna side removed), ``_trials`` (a study's trials, one trial's
detail), ``_chain`` (a follow-up chain's rounds, first to last), ``_rows`` (one row by id,
or 404), ``_views`` (diagnoses and plots derived from the stored runs), ``_health``
(readiness and the reaper).
"""

from studies.checkpoints import StoredCheckpoint, trial_checkpoint
from studies.optuna_bridge import optuna_storage
from studies.store._chain import study_chain
from studies.store._delete import delete_study
from studies.store._health import (
    DEFAULT_STALE_AFTER_S,
    database_unreachable,
    readiness,
    reap_stale_trials,
)
from studies.store._range import study_lr_range, study_lr_range_png
from studies.store._rows import study_row, trial_row
from studies.store._studies import (
    cancel_study,
    count_unfinished_studies,
    get_study,
    list_studies,
)
from studies.store._submit import submit_study
from studies.store._trials import epoch_records, get_trial, list_trials
from studies.store._views import study_diagnosis, study_lr_png, trial_curves_png, trial_diagnosis

__all__ = [
    "DEFAULT_STALE_AFTER_S",
    "StoredCheckpoint",
    "cancel_study",
    "count_unfinished_studies",
    "database_unreachable",
    "delete_study",
    "epoch_records",
    "get_study",
    "get_trial",
    "list_studies",
    "list_trials",
    "optuna_storage",
    "readiness",
    "reap_stale_trials",
    "study_chain",
    "study_diagnosis",
    "study_lr_png",
    "study_lr_range",
    "study_lr_range_png",
    "study_row",
    "submit_study",
    "trial_checkpoint",
    "trial_curves_png",
    "trial_diagnosis",
    "trial_row",
]
