"""A claimed slot of a ``search.sampler: range_test`` study: one LR range test instead of a
training run (``trainer.range_test``), its result stored and shown like a trial's.

The slot starts like any other (``studies.trial_run``: its Optuna trial, the enqueued point
``{"lr": lr_low}`` where the ramp starts, the heartbeat) and ends like any other, fenced by
the attempt number, but what it stores differs:

- ``TrialRow.lr_range``: the curve and the suggestion (``RangeTestResult.to_json``: ``lrs``,
  ``losses``, ``smoothed``, ``suggestion``, ``rule``, ``reason``, …), the study detail's
  ``lr_range`` too; the next round reads ``lr_range["suggestion"]``;
- no label and no diagnosis: a range test is no training run, so nothing is judged as one
  (the dashboard note says "LR range test");
- no objective value in its summary, so it is never a study's best trial. Optuna, which
  needs a value to COMPLETE a trial, is told the smoothed training loss at the suggested
  rate (user attribute ``objective``), the one number of the curve that the suggestion
  stands for (should that tell be lost, the reconciler, which finds no objective in the
  summary, closes the Optuna trial PRUNED; the slot and its lr_range are unaffected). A
  range test without any finite loss ends PRUNED with the reason;
- its plot (loss against rate, suggestion marked: ``plots.lr_range_png``) as the Optuna
  trial's artifact; ``GET /v1/studies/{id}/lr_range.png`` renders the same from the row.

Stopping: the worker's stop request ends the test at the next step and hands the slot back;
a slot taken away meanwhile (reaped) stores nothing. A range test lasts a few hundred steps,
so a cancelled study's test runs to its end (it reads no cancel flag between epochs: it has
none) and is then stored as usual.
"""

from __future__ import annotations

import logging
import math
import tempfile
import threading
from pathlib import Path
from typing import Any, Protocol

import optuna
from optuna.artifacts import FileSystemArtifactStore, upload_artifact
from optuna.trial import TrialState as OptunaState

from studies import checkpoints, optuna_bridge, plots, queue
from studies.db import Database, TrialState
from studies.spec import Sampler, StudySpec
from studies.worker_options import WorkerOptions
from trainer import TrainerError

log = logging.getLogger(__name__)

# What the Optuna value of a range test is (shown in the dashboard beside it).
OBJECTIVE_NOTE = "smoothed training loss at the suggested lr (an LR range test)"


class SlotContext(Protocol):
    """What a range test needs of the worker that claimed the slot (``WorkerContext``)."""

    @property
    def db(self) -> Database: ...
    @property
    def device(self) -> str: ...
    @property
    def options(self) -> WorkerOptions: ...
    @property
    def stop(self) -> threading.Event: ...


class RangeSlot(Protocol):
    """A started attempt of a claimed slot (``studies.trial_run.TrialRun``)."""

    @property
    def context(self) -> SlotContext: ...
    @property
    def claim(self) -> queue.Claim: ...
    @property
    def lost(self) -> threading.Event: ...  # the heartbeat found the slot taken away
    @property
    def optuna_trial_id(self) -> int | None: ...

    def fail(self, exc: BaseException) -> None: ...


def is_range_test(spec: StudySpec) -> bool:
    """Whether the study's slots run an LR range test (``search.sampler: range_test``)."""
    return spec.search.sampler is Sampler.RANGE_TEST


def run_range_test(slot: RangeSlot, study: optuna.Study, trial: optuna.Trial) -> None:
    """Run the slot's range test and store it (module docstring); the trainer's refusal
    (a missing dataset, a bad config) fails the trial with its message."""
    from trainer import range_test

    claim, context = slot.claim, slot.context
    search = claim.spec.search
    # The run as the spec describes it; its lr is where the ramp starts (the test sets it).
    config = claim.spec.to_run_config(
        {"lr": search.lr_low},
        data_dir=context.options.data_dir,
        device=context.device,
        trial_checkpoint=checkpoints.init_from_file(
            context.db, context.options.artifacts_dir, claim.spec
        ),
    )
    try:
        result = range_test(
            config,
            lr_low=search.lr_low,
            lr_high=search.lr_high,
            max_steps=search.range_steps,
            should_stop=lambda: context.stop.is_set() or slot.lost.is_set(),
        )
    except TrainerError as exc:
        log.warning("range test of trial %s failed: %s", claim.trial_id, exc)
        slot.fail(exc)
        return
    db = context.db
    if slot.lost.is_set():
        log.warning("trial %s was reaped while running; its result is dropped", claim.trial_id)
        return
    if context.stop.is_set():
        queue.release(db, claim, reason="worker stopped before the range test finished")
        optuna_bridge.fail_trial(db.url, slot.optuna_trial_id)
        return
    lr_range = result.to_json()
    suggestion = result.suggestion
    value = _loss_at(result.lrs, result.smoothed, suggestion.lr)
    state = TrialState.COMPLETE if value is not None else TrialState.PRUNED
    stop_reason = result.stopped_early if value is not None else suggestion.reason
    if not queue.record_lr_range(db, claim, lr_range):
        optuna_bridge.fail_trial(db.url, slot.optuna_trial_id)
        return
    _annotate(
        trial,
        lr_range,
        state=state,
        stop_reason=stop_reason,
        context=context,
        title=f"{claim.spec.display_name}: LR range test",
    )
    # The queue first, fenced by the attempt number (as studies.trial_run does).
    if not queue.finish(db, claim, state=state, stop_reason=stop_reason):
        log.warning("trial %s was reaped before it finished; result dropped", claim.trial_id)
        optuna_bridge.fail_trial(db.url, slot.optuna_trial_id)
        return
    optuna_state = OptunaState.COMPLETE if value is not None else OptunaState.PRUNED
    optuna_bridge.tell(study, trial, optuna_state, value)
    log.info("trial %s: range test, suggested lr %s", claim.trial_id, suggestion.lr)


def _annotate(
    trial: optuna.Trial,
    lr_range: dict[str, Any],
    *,
    state: TrialState,
    stop_reason: str | None,
    context: SlotContext,
    title: str,
) -> None:
    """The dashboard's view of the test: user attributes, a note, the plot as an artifact
    (uploaded from a temporary file: Optuna's store keeps its own copy)."""
    # Imported on first use: optuna_dashboard takes seconds to import (optuna_bridge.annotate).
    from optuna_dashboard import save_note

    attrs = {
        "state": state.value,
        "stop_reason": stop_reason or "",
        "suggested_lr": lr_range["suggestion"],
        "rule": lr_range["rule"],
        "objective": OBJECTIVE_NOTE,
    }
    for key, value in attrs.items():
        trial.set_user_attr(key, value)
    save_note(trial, range_note(lr_range))
    png = plots.lr_range_png(lr_range, title=title)
    context.options.artifacts_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=context.options.artifacts_dir) as folder:
        path = Path(folder) / "lr-range.png"
        path.write_bytes(png)
        upload_artifact(
            artifact_store=FileSystemArtifactStore(str(context.options.artifacts_dir)),
            file_path=str(path),
            study_or_trial=trial,
            mimetype="image/png",
        )


def _loss_at(lrs: list[float], smoothed: list[float], lr: float | None) -> float | None:
    """The smoothed loss at the step nearest *lr* (log scale), or None (no suggestion)."""
    if lr is None or not lrs:
        return None
    nearest = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / lr)))
    value = smoothed[nearest]
    return value if math.isfinite(value) else None


def range_note(lr_range: dict[str, Any]) -> str:
    """The dashboard note of a range test: the suggestion, the rule and why (Markdown)."""
    lines = ["## LR range test", ""]
    if lr_range["suggestion"] is None:
        lines.append("No suggestion.")
    else:
        suggested = f"{lr_range['suggestion']:.3g}"
        lines.append(f"**Suggested learning rate: {suggested}** ({lr_range['rule']})")
    lines += [
        "",
        str(lr_range["reason"]),
        "",
        f"{lr_range['steps']} of {lr_range['planned_steps']} steps, lr "
        f"{lr_range['lr_low']:g} → {lr_range['lr_high']:g}"
        + (f"; stopped early: {lr_range['stopped_early']}" if lr_range["stopped_early"] else ""),
        "",
        "Not a training run: no label, and never a study's best trial.",
    ]
    return "\n".join(lines)
