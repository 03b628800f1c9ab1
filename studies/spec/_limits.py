"""What the schema alone cannot check: one server's own limits and its data root."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studies.errors import FieldError, SpecError
from studies.spec._search import MAX_TRIALS, Sampler
from studies.spec._sections import resolve_inside
from studies.spec._study import StudySpec
from trainer._config import IMAGEFOLDER_PREFIX, MAX_EPOCHS


@dataclass(frozen=True)
class SpecLimits:
    """One server's own limits, at or below the hard ones (the defaults).

    The service builds this from its settings; nothing in this layer reads the environment.
    """

    max_trials: int = MAX_TRIALS
    max_epochs: int = MAX_EPOCHS


def check_limits(spec: StudySpec, limits: SpecLimits) -> list[FieldError]:
    """Every field of *spec* over the server's *limits* (trials, epochs), with the reason."""
    errors: list[FieldError] = []
    trials = spec.trial_count()
    if trials > limits.max_trials:
        field = "search.n_trials" if spec.search.sampler is not Sampler.GRID else "search"
        errors.append(
            FieldError(
                field,
                f"the study would run {trials} trials, more than this server's limit of "
                f"{limits.max_trials} (its max_trials_per_study setting)",
            )
        )
    if spec.train.epochs > limits.max_epochs:
        errors.append(
            FieldError(
                "train.epochs",
                f"must be at most {limits.max_epochs} on this server (its max_epochs "
                f"setting), got {spec.train.epochs}",
            )
        )
    return errors


def check_submission(spec: StudySpec, *, limits: SpecLimits, data_root: Path) -> None:
    """What the schema alone cannot check, against one server: its limits and its data root.

    Raises SpecError naming every offending field: trials or epochs over the server's
    limits, an image folder or `init_from` checkpoint that is missing or resolves outside
    the data root (symlinks followed, at submit time, so a bad path never reaches a worker).
    """
    errors = check_limits(spec, limits)
    if spec.dataset.startswith(IMAGEFOLDER_PREFIX):
        folder = spec.dataset.removeprefix(IMAGEFOLDER_PREFIX)
        try:
            if not resolve_inside(data_root, folder, "dataset").is_dir():
                errors.append(
                    FieldError("dataset", f"no folder {folder!r} under the server's data root")
                )
        except SpecError as exc:
            errors.extend(exc.errors)
    # A trial's checkpoint (trial:<id>) is the store's to check (studies.checkpoints).
    if spec.train.init_from is not None and spec.train.init_from_trial is None:
        try:
            if not resolve_inside(data_root, spec.train.init_from, "train.init_from").is_file():
                errors.append(
                    FieldError(
                        "train.init_from",
                        f"no checkpoint file {spec.train.init_from!r} under the server's data root",
                    )
                )
        except SpecError as exc:
            errors.extend(exc.errors)
    weights = spec.model.weights_file  # a torchvision model's starting weights
    if weights is not None:
        try:
            if not resolve_inside(data_root, weights, "model.weights_file").is_file():
                errors.append(
                    FieldError(
                        "model.weights_file", f"no file {weights!r} under the server's data root"
                    )
                )
        except SpecError as exc:
            errors.extend(exc.errors)
    if errors:
        raise SpecError(errors)
