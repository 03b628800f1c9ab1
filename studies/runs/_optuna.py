"""An external run's Optuna side: its project's Optuna study, its trial, the values it
reports and how it ends, written through the storage so that every call may be repeated.

A resent epoch or finish repeats these writes (the database rows committed, an Optuna write
lost to an outage): intermediate values are upserts, attributes are only written while the
trial runs, and closing a closed trial does nothing.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import optuna
from optuna.distributions import FloatDistribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.study import StudyDirection
from optuna.trial import TrialState as OptunaState

from studies import optuna_bridge
from studies.diagnosis import Diagnosis
from studies.errors import ConflictError
from studies.notes import trial_note
from studies.spec import Objective

ATTR_RUN_ID = "sweepdoc_run_id"
ATTR_RUN_NAME = "run"
# The user attributes sweepdoc writes on a run's trial, which a text parameter (stored as a
# user attribute too) must not overwrite; ``sweepdoc_`` is kept for sweepdoc's own.
RESERVED_ATTRS = frozenset(
    {ATTR_RUN_ID, ATTR_RUN_NAME, optuna_bridge.ATTR_LABEL, optuna_bridge.ATTR_CONFIDENCE}
)
RESERVED_ATTR_PREFIX = "sweepdoc_"
_DIRECTION = {"maximize": StudyDirection.MAXIMIZE, "minimize": StudyDirection.MINIMIZE}


def study_name(project: str) -> str:
    """The Optuna study of a project's runs (sweepdoc's own studies are ``sweepdoc-<id>-…``)."""
    return f"runs:{project}"


def _study_id(url: str, name: str, objective: Objective) -> int:
    """The project's Optuna study, created on its first run; its direction must match."""
    storage = optuna_bridge.optuna_storage(url)
    wanted = _DIRECTION[objective.direction]
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        try:
            return storage.create_new_study([wanted], name)
        except DuplicatedStudyError:  # another run of the project created it meanwhile
            study_id = storage.get_study_id_from_name(name)
    (direction,) = storage.get_study_directions(study_id)
    if direction != wanted:
        raise ConflictError(
            f"project {name.removeprefix('runs:')!r} optimizes the validation metric in the "
            f"other direction ({direction.name.lower()}); its runs keep the objective of its "
            f"first run, so send objective "
            f"{Objective.VAL_ACC if direction == StudyDirection.MAXIMIZE else Objective.VAL_LOSS}"
            " or use another project"
        )
    return study_id


def start_trial(
    url: str, *, project: str, run_name: str, objective: Objective, params: dict[str, Any]
) -> tuple[int, int]:
    """A RUNNING trial for a new run; its (trial id, number).

    Numbers become parameters (each a one-point distribution: every run of a project fixes
    its own values, and such distributions never clash between runs); text and booleans
    become user attributes, since categorical parameters must share their choices.
    """
    storage = optuna_bridge.optuna_storage(url)
    study_id = _study_id(url, study_name(project), objective)
    numbers = {
        k: float(v)
        for k, v in params.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    others = {k: v for k, v in params.items() if k not in numbers}
    template = optuna.trial.create_trial(
        state=OptunaState.RUNNING,
        params=numbers,
        distributions={k: FloatDistribution(v, v) for k, v in numbers.items()},
        user_attrs={**others, ATTR_RUN_NAME: run_name},
    )
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    return trial_id, storage.get_trial_number_from_id(trial_id)


def mark_run(url: str, trial_id: int, run_id: int) -> None:
    """Tag the trial with its run's id (known only once the run's row exists)."""
    optuna_bridge.optuna_storage(url).set_trial_user_attr(trial_id, ATTR_RUN_ID, run_id)


def report(url: str, trial_id: int, epoch: int, value: float | None) -> None:
    """The objective of one epoch as the trial's intermediate value (dashboard curves)."""
    if value is None or not math.isfinite(value):
        return  # a diverged epoch has no value to plot; the live check deals with it
    storage = optuna_bridge.optuna_storage(url)
    with contextlib.suppress(UpdateFinishedTrialError):  # a resend after the run ended
        storage.set_trial_intermediate_value(trial_id, epoch, value)


def end_trial(
    url: str,
    trial_id: int,
    *,
    project: str,
    diagnosis: Diagnosis,
    params: dict[str, Any],
    stopped: bool,
    stop_reason: str | None,
    objective_value: float | None,
) -> None:
    """Write the verdict (label, confidence, a dashboard note) and close the trial: PRUNED
    when the live check stopped the run (as the worker does with a diverged trial), else
    COMPLETE with the objective's best value (PRUNED when the run has none that is finite)."""
    storage = optuna_bridge.optuna_storage(url)
    if storage.get_trial(trial_id).state.is_finished():
        return
    storage.set_trial_user_attr(trial_id, optuna_bridge.ATTR_LABEL, diagnosis.label.value)
    storage.set_trial_user_attr(
        trial_id, optuna_bridge.ATTR_CONFIDENCE, round(diagnosis.confidence, 3)
    )
    state = "stopped" if stopped else "complete"
    note = trial_note(diagnosis, params=params, state=state, stop_reason=stop_reason)
    _save_note(url, study_name(project), trial_id, note)
    finite = objective_value is not None and math.isfinite(objective_value)
    if stopped or not finite:
        optuna_bridge.close_trial(url, trial_id, OptunaState.PRUNED, None)
    else:
        optuna_bridge.close_trial(url, trial_id, OptunaState.COMPLETE, objective_value)


def _save_note(url: str, name: str, trial_id: int, note: str) -> None:
    # Imported on first use, as in optuna_bridge.annotate: optuna_dashboard is slow to import.
    from optuna_dashboard import save_note

    study = optuna.load_study(study_name=name, storage=optuna_bridge.optuna_storage(url))
    save_note(optuna.Trial(study, trial_id), note)
