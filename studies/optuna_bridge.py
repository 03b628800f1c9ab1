"""Optuna wiring: one Optuna study per sweepdoc study, in the same database.

sweepdoc's own queue (studies.queue) decides which worker runs which slot; Optuna records
every attempt as a trial (so ``optuna.load_study`` and the dashboard show the same truth as
the API), samples the parameters of random/tpe slots, and runs the pruner. Pitfalls avoided
(docs/design.md): no GridSampler (it can run a point twice with parallel workers) and no
popping of WAITING trials by ``study.ask()`` on SQLite (it relies on ``SELECT … FOR
UPDATE``): a grid slot's enqueued Optuna trial is moved to RUNNING by the worker that won
the slot in sweepdoc's queue, and a retried slot gets a fresh RUNNING trial with the same
parameters fixed.
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any

import optuna
from optuna.artifacts import ArtifactMeta
from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.storages import RDBStorage
from optuna.trial import TrialState as OptunaState

from studies.db import engine_kwargs
from studies.optuna_attrs import write_trial_attrs
from studies.spec import Pruner, Sampler, StudySpec

# The storages optuna_storage() made, so close_storages() can release their connections.
_REGISTRY: dict[str, RDBStorage] = {}

# Dashboard-visible user attributes written on every finished trial.
ATTR_LABEL = "label"
ATTR_CONFIDENCE = "confidence"
ATTR_SWEEPDOC_TRIAL = "sweepdoc_trial_id"
ATTR_ATTEMPT = "sweepdoc_attempt"
_FIXED_PARAMS = "fixed_params"  # Optuna's own system attribute read by Trial._suggest


@lru_cache(maxsize=8)
def optuna_storage(url: str) -> RDBStorage:
    """The Optuna storage of *url* (one per process); the dashboard must be given this one.

    Creating it creates Optuna's tables when missing. Its engine has the options of
    sweepdoc's own (``db.engine_kwargs``): on SQLite the same busy timeout, so Optuna's
    writes wait for the lock instead of failing; on PostgreSQL the process's pool.
    """
    # Optuna's start-up holds a connection while it opens a second one (stamping a fresh
    # database's version, its schema check), which a pool of one (a worker's) would wait for
    # until it times out. So Optuna creates its tables on an unpooled engine, closed at once,
    # and the pooled storage skips that work; the schema check runs one connection at a time.
    RDBStorage(
        url,
        engine_kwargs=engine_kwargs(url, role="optuna", pooled=False),
        skip_compatibility_check=True,
    ).engine.dispose()
    storage = RDBStorage(
        url,
        engine_kwargs=engine_kwargs(url, role="optuna"),
        skip_compatibility_check=True,
        skip_table_creation=True,
    )
    current, head = storage.get_current_version(), storage.get_head_version()
    if current != head:
        storage.engine.dispose()
        raise RuntimeError(
            f"the database's Optuna tables are at schema {current}, but optuna "
            f"{optuna.__version__} needs {head}: run `optuna storage upgrade --storage URL`"
        )
    _REGISTRY[url] = storage
    return storage


def distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """The search space as Optuna distributions, in suggestion order (lr first)."""
    search = spec.search
    if search.sampler is Sampler.GRID:
        # The grid's own bounds: an explicit grid may reach beyond [lr_low, lr_high].
        grid = search.lr_grid()
        lr: BaseDistribution = FloatDistribution(min(grid), max(grid), log=True)
    else:
        lr = FloatDistribution(search.lr_low, search.lr_high, log=True)
    dims: dict[str, BaseDistribution] = {"lr": lr}
    for name, values in search.extra.as_dict().items():
        dims[name] = CategoricalDistribution(values)
    return dims


def make_sampler(spec: StudySpec) -> optuna.samplers.BaseSampler:
    # Grid slots carry fixed parameters, so their sampler is never consulted.
    if spec.search.sampler is Sampler.TPE:
        # Few startup trials: a study of 20 trials should spend most of them guided.
        return optuna.samplers.TPESampler(n_startup_trials=min(5, spec.search.trials()))
    return optuna.samplers.RandomSampler()


def make_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    if spec.pruner is Pruner.MEDIAN:
        # Two finished trials and two epochs before judging: the first epochs of every
        # learning rate look alike, and one trial is no median.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2)
    if spec.pruner is Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=spec.train.epochs)
    return optuna.pruners.NopPruner()


def create_study(url: str, name: str, spec: StudySpec) -> None:
    """Create the Optuna study of a sweepdoc study (direction from the objective)."""
    optuna.create_study(
        study_name=name, storage=optuna_storage(url), direction=spec.objective.direction
    )


def load_study(url: str, name: str, spec: StudySpec) -> optuna.Study:
    """The Optuna study with the sampler and pruner the spec asks for."""
    return optuna.load_study(
        study_name=name,
        storage=optuna_storage(url),
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
    )


def enqueue_point(url: str, study_name: str, params: dict[str, Any]) -> tuple[int, int]:
    """Enqueue a grid point as a WAITING Optuna trial; return its (trial_id, number).

    Same as ``study.enqueue_trial`` but returns the id, so the sweepdoc slot can point at it.
    """
    storage = optuna_storage(url)
    study_id = storage.get_study_id_from_name(study_name)
    template = optuna.trial.create_trial(
        state=OptunaState.WAITING, system_attrs={_FIXED_PARAMS: params}
    )
    trial_id = storage.create_new_trial(study_id, template_trial=template)
    return trial_id, storage.get_trial_number_from_id(trial_id)


def start_trial(
    study: optuna.Study,
    spec: StudySpec,
    *,
    enqueued_trial_id: int | None,
    params: dict[str, Any] | None,
) -> tuple[optuna.Trial, dict[str, Any]]:
    """Start the Optuna trial of a claimed slot and return it with the trial's parameters.

    - a grid slot's first attempt: its enqueued WAITING trial becomes RUNNING;
    - a retry (parameters known): a new RUNNING trial with those parameters fixed;
    - a fresh random/tpe slot: ``study.ask()``, the sampler picks the parameters.
    """
    storage = study._storage
    if enqueued_trial_id is not None:
        started = storage.set_trial_state_values(enqueued_trial_id, OptunaState.RUNNING)
        # Already RUNNING: this worker's own earlier try, whose reply a transient error lost
        # (only the slot's claim holder starts its enqueued trial, once per slot).
        if not started and storage.get_trial(enqueued_trial_id).state != OptunaState.RUNNING:
            raise RuntimeError(f"Optuna trial {enqueued_trial_id} was not WAITING")
        # Let the study's trial cache learn the trial (ask() does the same when it pops one);
        # a pack's members share one study, whose cache learnt the whole grid at the first.
        known = getattr(storage, "_trial_id_to_study_id_and_number", None)
        if known is None or enqueued_trial_id not in known:
            storage.get_all_trials(study._study_id, deepcopy=False, states=(OptunaState.RUNNING,))
        trial = optuna.Trial(study, enqueued_trial_id)
    elif params is not None:
        template = optuna.trial.create_trial(
            state=OptunaState.RUNNING, system_attrs={_FIXED_PARAMS: params}
        )
        trial = optuna.Trial(study, storage.create_new_trial(study._study_id, template))
    else:
        trial = study.ask()
    chosen = {name: trial._suggest(name, dist) for name, dist in distributions(spec).items()}
    return trial, chosen


def storage_trial_id(trial: optuna.Trial) -> int:
    """The storage id of a trial ``start_trial`` started. ``optuna.Trial`` keeps it private;
    asking the storage for it by number costs two round trips per trial."""
    return int(trial._trial_id)


def fail_trial(url: str, trial_id: int | None) -> None:
    """Mark an attempt's Optuna trial FAIL (a dead or fenced-out worker's), unless it already
    finished (or there is none: None)."""
    if trial_id is None:
        return
    storage = optuna_storage(url)
    if storage.get_trial(trial_id).state.is_finished():
        return
    # Another process (the reaper, the reconciler) may close it between the two calls.
    with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
        storage.set_trial_state_values(trial_id, OptunaState.FAIL)


def close_trial(url: str, trial_id: int, state: OptunaState, value: float | None) -> bool:
    """Finish an unfinished Optuna trial as *state* (COMPLETE with *value*, which must be
    finite; PRUNED with its last intermediate value, as ``study.tell`` does; FAIL); False
    when it had already finished. What the reconciler writes for a trial whose worker
    finished the slot in the queue but never told Optuna."""
    storage = optuna_storage(url)
    trial = storage.get_trial(trial_id)
    if trial.state.is_finished():
        return False
    values: list[float] | None = None
    if state == OptunaState.COMPLETE:
        if value is None or not math.isfinite(value):
            raise ValueError(f"a COMPLETE trial needs a finite objective value, got {value}")
        values = [value]
    elif state == OptunaState.PRUNED and trial.intermediate_values:
        last = trial.intermediate_values[max(trial.intermediate_values)]
        values = [last] if math.isfinite(last) else None
    return storage.set_trial_state_values(trial_id, state, values)


def end_waiting_trial(url: str, trial_id: int) -> None:
    """Close a never-started (WAITING) trial of a cancelled study as PRUNED."""
    storage = optuna_storage(url)
    if storage.get_trial(trial_id).state == OptunaState.WAITING:
        storage.set_trial_state_values(trial_id, OptunaState.PRUNED)


def report(trial: optuna.Trial, value: float, epoch: int) -> bool:
    """Report one epoch's objective; return whether the pruner says to stop."""
    if not math.isfinite(value):
        return False  # a diverged epoch is the live check's business, not the pruner's
    trial.report(value, step=epoch)
    if isinstance(trial.study.pruner, optuna.pruners.NopPruner):
        return False  # spares should_prune's read of the whole trial, every epoch
    return trial.should_prune()


def annotate(
    trial: optuna.Trial,
    *,
    storage_trial_id: int,
    label: str | None,
    confidence: float | None,
    note: str | None,
    plot_artifact_id: str | None,
    attrs: dict[str, Any],
) -> None:
    """Write the diagnosis onto the Optuna trial (*storage_trial_id* its storage id): user
    attributes, a note, and the curves plot listed as an artifact whose file is rendered
    when first opened (``studies.plots.LazyCurvesStore``); one transaction
    (``studies.optuna_attrs``)."""
    user = dict(attrs)
    if label is not None:
        user[ATTR_LABEL] = label
    if confidence is not None:
        user[ATTR_CONFIDENCE] = round(confidence, 3)
    system: dict[str, Any] = {}
    if plot_artifact_id is not None:
        # What optuna.artifacts.upload_artifact records, without writing the file.
        meta = ArtifactMeta(
            artifact_id=plot_artifact_id,
            filename=Path(plot_artifact_id).name,
            mimetype="image/png",
            encoding=None,
        )
        system[ARTIFACTS_ATTR_PREFIX + plot_artifact_id] = json.dumps(asdict(meta))
    write_trial_attrs(trial, storage_trial_id=storage_trial_id, user=user, system=system, note=note)


def tell(study: optuna.Study, trial: optuna.Trial, state: OptunaState, value: float | None) -> None:
    """Finish the Optuna trial. COMPLETE needs a finite value; PRUNED takes the last report."""
    if state == OptunaState.COMPLETE:
        if value is None or not math.isfinite(value):
            raise ValueError(f"a COMPLETE trial needs a finite objective value, got {value}")
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)


def close_storages() -> None:
    """Dispose every cached Optuna storage's connections (tests, shutdown)."""
    optuna_storage.cache_clear()
    while _REGISTRY:
        _, storage = _REGISTRY.popitem()
        storage.engine.dispose()
