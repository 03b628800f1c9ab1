"""`sweepdoc export STUDY DIR`: the study's best trained model, to take home.

Everything comes over HTTP (``service.client``), so it works against any server: DIR gets
``checkpoint.pt`` (the best trial's best epoch, by the study's objective), ``curves.json``
(every epoch), ``config.json`` (the run config the trial trained with, read from the
checkpoint itself) and ``model_card.md`` (dataset, recipe, label, validation metrics, study
and trial ids, how to load it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from service.client import ApiError, SweepdocClient
from service.commands._server import UrlOption, server_client
from studies.schemas import StudyPublic, TrialDetail

if TYPE_CHECKING:
    from pydantic import BaseModel

    from trainer import Checkpoint

# What DIR receives, in the order it is written (the checkpoint first: it can be refused).
CHECKPOINT_FILE = "checkpoint.pt"
CURVES_FILE = "curves.json"
CONFIG_FILE = "config.json"
MODEL_CARD_FILE = "model_card.md"


def export(
    study_id: Annotated[
        int, typer.Argument(min=1, metavar="STUDY", help="The study's id (`sweepdoc status`).")
    ],
    directory: Annotated[
        Path,
        typer.Argument(
            file_okay=False, metavar="DIR", help="Folder to write into (created if missing)."
        ),
    ],
    trial_id: Annotated[
        int | None,
        typer.Option("--trial", min=1, help="A trial of the study other than its best (its id)."),
    ] = None,
    url: UrlOption = None,
) -> None:
    """Write study STUDY's best trained model into DIR: checkpoint, curves, config, model card."""
    with server_client(url) as client:
        study = client.study(study_id)
        trial = client.trial(_chosen_trial(study, trial_id))
        if trial.study_id != study.id:
            raise ApiError(f"trial {trial.id} belongs to study {trial.study_id}, not {study.id}")
        directory.mkdir(parents=True, exist_ok=True)
        client.download_checkpoint(trial.id, directory / CHECKPOINT_FILE)
        written = write_export(directory, study=study, trial=trial, client=client)
    Console().print(
        f"study {study.id}, trial {trial.id} (#{trial.number}) exported to {directory}: "
        + ", ".join(p.name for p in written),
        highlight=False,
    )


def _chosen_trial(study: StudyPublic, trial_id: int | None) -> int:
    if trial_id is not None:
        return trial_id
    if study.best_trial is None:
        raise ApiError(
            f"study {study.id} has no complete trial yet (status {study.status.value}); "
            "export it once one has completed"
        )
    return study.best_trial.trial_id


def write_export(
    directory: Path, *, study: StudyPublic, trial: TrialDetail, client: SweepdocClient
) -> list[Path]:
    """Write the curves, config and model card beside the downloaded checkpoint."""
    from trainer import TrainerError, load_checkpoint  # torch: only once there is a file

    checkpoint = directory / CHECKPOINT_FILE
    try:
        ckpt = load_checkpoint(checkpoint)
    except TrainerError as exc:
        raise ApiError(f"the downloaded checkpoint cannot be read: {exc}") from exc
    config = ckpt.config.to_json()
    files = {
        CURVES_FILE: json.dumps(trial.curves, indent=2, allow_nan=False) + "\n",
        CONFIG_FILE: json.dumps(config, indent=2) + "\n",
        MODEL_CARD_FILE: model_card(study=study, trial=trial, ckpt=ckpt, server=client.base_url),
    }
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
    return [checkpoint, *(directory / name for name in files)]


def model_card(*, study: StudyPublic, trial: TrialDetail, ckpt: Checkpoint, server: str) -> str:
    """A short Markdown description of the exported model."""
    data, model, optim = ckpt.config.data, ckpt.config.model, ckpt.config.optim
    c, h, w = ckpt.input_shape
    names = ckpt.class_names or [str(i) for i in range(ckpt.num_classes)]
    label = trial.diagnosis or {}
    verdict = (
        f"{label.get('label')} (confidence {label.get('confidence', 0.0):.2f}): "
        f"{label.get('summary', '')}"
        if trial.label is not None
        else "not diagnosed"
    )
    recipe = (
        f"{optim.optimizer} lr {optim.lr:g}, momentum {optim.momentum:g}, weight decay "
        f"{optim.weight_decay:g}, batch {optim.batch_size}, {optim.epochs} epochs, schedule "
        f"{optim.schedule}, label smoothing {optim.label_smoothing:g}, seed {optim.seed}"
    )
    if optim.init_from is not None:
        recipe += f"; fine-tuned ({optim.finetune}) from {Path(optim.init_from).name}"
    return "\n".join(
        [
            f"# {study.name}: trial #{trial.number}",
            "",
            f"- Study {study.id} (`{study.name}`, objective {study.objective.value}), "
            f"trial {trial.id} (#{trial.number}), from {server}",
            f"- Dataset: `{data.dataset}`, {ckpt.train_size} training images "
            f"(val fraction {data.val_fraction:g}, split seed {data.split_seed}), "
            f"{c}×{h}×{w}, {ckpt.num_classes} classes: {', '.join(names)}",
            f"- Model: `{model.arch}` ({_settings(model, leave_out='arch')})",
            f"- Recipe: {recipe}; augmentation {data.resolved_augment}",
            f"- Label: {verdict}",
            f"- Validation at the checkpoint's epoch {ckpt.epoch}: accuracy "
            f"{ckpt.metric['val_acc']:.4f}, loss {ckpt.metric['val_loss']:.4f} "
            f"(the run's best accuracy {_number(trial.best_val_acc)}, final accuracy "
            f"{_number(trial.final_val_acc)} after {trial.epochs_done} epochs)",
            f"- Normalization (per channel, training split): mean {_floats(ckpt.mean)}, "
            f"std {_floats(ckpt.std)}; inputs are (x - mean) / std in the dataset's pixel scale",
            "",
            "Load it and score it again on its validation split:",
            "",
            "```python",
            "from trainer import evaluate_checkpoint, load_checkpoint",
            f'ckpt = load_checkpoint("{CHECKPOINT_FILE}")  # weights_only: no code runs',
            "# Files elsewhere here: data=ckpt.config.data.model_copy(update={'data_dir': ...})",
            f"print(evaluate_checkpoint(ckpt))  # val_acc {ckpt.metric['val_acc']:.4f}",
            "```",
            "",
            f"`{CONFIG_FILE}` is the run config it trained with, `{CURVES_FILE}` its curves.",
            "",
        ]
    )


def _settings(config: BaseModel, *, leave_out: str) -> str:
    """*config*'s set fields as `name value` pairs (any architecture's, plugins' too)."""
    values = config.model_dump(mode="json", exclude={leave_out}, exclude_none=True)
    return ", ".join(f"{name} {value}" for name, value in values.items())


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _floats(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
