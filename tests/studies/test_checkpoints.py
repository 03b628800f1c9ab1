"""Checkpoints in the artifact store (issue 13 part 3), with a real worker in this process on
a real database: each complete trial keeps its best epoch by the study's objective, the
study keeps its best ``keep_checkpoints``, the store's cap skips a checkpoint with a warning
while the trial completes, ``train.init_from: "trial:<id>"`` fine-tunes from a stored one,
and deleting a study deletes its files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from studies import checkpoints, store
from studies.db import Database, TrialState
from studies.errors import NotFoundError, SpecError
from studies.schemas import StudyPublic, TrialDetail
from studies.spec import parse_spec
from studies.worker import run_worker
from tests.studies.conftest import tiny_spec, worker_options
from trainer import load_checkpoint


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _run(db: Database, tmp_path: Path, *, max_artifact_bytes: int | None = None) -> None:
    run_worker(worker_options(db.url, tmp_path, "inproc", max_artifact_bytes=max_artifact_bytes))


def _submit(db: Database, tmp_path: Path, **overrides: Any) -> StudyPublic:
    spec = parse_spec(tiny_spec(**overrides))
    return store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")


def _trials(db: Database, study: StudyPublic) -> list[TrialDetail]:
    return [store.get_trial(db, t.id) for t in store.list_trials(db, study.id).data]


def _stored(tmp_path: Path, study: StudyPublic) -> set[str]:
    return {p.name for p in (tmp_path / "artifacts" / "checkpoints" / str(study.id)).glob("*")}


@pytest.mark.parametrize("objective", ["val_acc", "val_loss"])
def test_each_complete_trial_keeps_its_best_epoch_by_the_objective(
    db: Database, tmp_path: Path, objective: str
) -> None:
    study = _submit(
        db, tmp_path, objective=objective, train={"epochs": 4}, search={"grid": [0.3, 0.03]}
    )
    _run(db, tmp_path)
    for trial in _trials(db, study):
        assert trial.state is TrialState.COMPLETE and trial.warnings == []
        values = [float(e[objective]) for e in trial.epochs]
        best = max(values) if objective == "val_acc" else min(values)
        best_epoch = values.index(best) + 1  # the first epoch wins a tie
        assert trial.checkpoint_epoch == best_epoch
        stored = store.trial_checkpoint(db, trial.id, artifacts_dir=tmp_path / "artifacts")
        ckpt = load_checkpoint(stored.path)
        assert ckpt.epoch == best_epoch and ckpt.metric[objective] == best
        assert ckpt.class_names == [str(d) for d in range(10)]
        assert trial.checkpoint_bytes == stored.path.stat().st_size
        assert stored.download_name == f"sweepdoc-study-{study.id}-trial-{trial.id}.pt"
    # Nothing is left where running trials write theirs.
    assert list((tmp_path / "artifacts" / checkpoints.RUNNING_DIR).glob("*")) == []


def test_retention_keeps_the_best_k_by_the_objective_and_says_why_on_the_others(
    db: Database, tmp_path: Path
) -> None:
    study = _submit(db, tmp_path, keep_checkpoints=2, search={"grid": [1.0, 0.3, 0.1, 0.001]})
    _run(db, tmp_path)
    trials = _trials(db, study)
    assert all(t.state is TrialState.COMPLETE for t in trials)
    ranked = sorted(trials, key=lambda t: (-(t.best_val_acc or -math.inf), t.number))
    kept, dropped = ranked[:2], ranked[2:]
    assert _stored(tmp_path, study) == {f"{t.id}.pt" for t in kept}
    for trial in kept:
        assert trial.checkpoint_epoch == 1 and trial.warnings == []
    for trial in dropped:
        assert trial.checkpoint_epoch is None and trial.checkpoint_bytes is None
        assert trial.warnings == [
            "checkpoint deleted: not among the study's best 2 by val_acc (its keep_checkpoints)"
        ]
        with pytest.raises(NotFoundError, match="not among the study's best 2"):
            store.trial_checkpoint(db, trial.id, artifacts_dir=tmp_path / "artifacts")


def test_a_full_store_skips_the_checkpoint_with_a_warning_and_the_trial_completes(
    db: Database, tmp_path: Path
) -> None:
    first = _submit(db, tmp_path, search={"grid": [0.1]})
    _run(db, tmp_path)
    (one,) = _trials(db, first)
    assert one.checkpoint_bytes is not None
    # Room for about two and a half: the first study's, then one of the next two.
    cap = one.checkpoint_bytes * 5 // 2
    second = _submit(db, tmp_path, search={"grid": [0.1, 0.01]})
    _run(db, tmp_path, max_artifact_bytes=cap)

    fitted, skipped = _trials(db, second)
    assert fitted.state is TrialState.COMPLETE and fitted.checkpoint_epoch == 1
    assert skipped.state is TrialState.COMPLETE and skipped.label is not None
    assert skipped.checkpoint_epoch is None
    (warning,) = skipped.warnings
    assert warning.startswith("checkpoint skipped: the artifact store is full (")
    assert f"SWEEPDOC_MAX_ARTIFACT_BYTES={cap}" in warning
    assert _stored(tmp_path, second) == {f"{fitted.id}.pt"}
    with pytest.raises(NotFoundError, match="artifact store is full"):
        store.trial_checkpoint(db, skipped.id, artifacts_dir=tmp_path / "artifacts")


def test_init_from_a_trial_fine_tunes_from_its_stored_checkpoint(
    db: Database, tmp_path: Path
) -> None:
    source = _submit(db, tmp_path, train={"epochs": 2}, search={"grid": [0.1]})
    _run(db, tmp_path)
    (pretrained,) = _trials(db, source)
    source_file = store.trial_checkpoint(db, pretrained.id, artifacts_dir=tmp_path / "artifacts")

    # The spec asks for a wider network: fine-tuning takes the checkpoint's own.
    tuned = _submit(
        db,
        tmp_path,
        model={"width": 8},
        train={"init_from": f"trial:{pretrained.id}", "finetune": "full"},
        search={"grid": [0.01]},
    )
    assert tuned.spec["train"]["init_from"] == f"trial:{pretrained.id}"
    _run(db, tmp_path)
    (trial,) = _trials(db, tuned)
    assert trial.state is TrialState.COMPLETE, trial.error
    ckpt = load_checkpoint(
        store.trial_checkpoint(db, trial.id, artifacts_dir=tmp_path / "artifacts").path
    )
    assert ckpt.config.optim.init_from == source_file.path
    assert ckpt.config.model.width == 4  # the source trial's network, not the spec's 8


@pytest.mark.parametrize(
    ("init_from", "reason"),
    [
        ("trial:999", "trial 999 does not exist"),
        ("trial:{waiting}", "is waiting: its checkpoint is stored once it completes"),
    ],
    ids=["unknown-trial", "not-complete"],
)
def test_init_from_a_trial_without_a_checkpoint_is_refused_naming_the_field(
    db: Database, tmp_path: Path, init_from: str, reason: str
) -> None:
    queued = _submit(db, tmp_path, search={"grid": [0.1]})
    waiting = store.list_trials(db, queued.id).data[0].id
    with pytest.raises(SpecError) as refused:
        _submit(db, tmp_path, train={"init_from": init_from.format(waiting=waiting)})
    (error,) = refused.value.errors
    assert error.field == "train.init_from" and reason in error.message
    assert store.list_studies(db).count == 1  # nothing written


@pytest.mark.parametrize("bad", ["trial:", "trial:0", "trial:x1", "trial:-3"])
def test_a_malformed_trial_reference_is_refused_by_the_spec(bad: str) -> None:
    with pytest.raises(SpecError) as refused:
        parse_spec(tiny_spec(train={"init_from": bad}))
    assert refused.value.errors[0].field == "train.init_from"
    assert "trial:<id>" in refused.value.errors[0].message


def test_deleting_a_study_deletes_its_checkpoints(db: Database, tmp_path: Path) -> None:
    study = _submit(db, tmp_path, search={"grid": [0.1, 0.01]})
    _run(db, tmp_path)
    assert len(_stored(tmp_path, study)) == 2
    store.delete_study(db, study.id, artifacts_dir=tmp_path / "artifacts")
    assert not (tmp_path / "artifacts" / "checkpoints" / str(study.id)).exists()


def test_a_keep_sweeps_only_running_files_nothing_will_keep(db: Database, tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    study = _submit(db, tmp_path, search={"grid": [0.1, 0.01]})
    broken = _submit(db, tmp_path, dataset="mnist", search={"grid": [0.1]})  # no data: fails
    _run(db, tmp_path)
    first, second = _trials(db, study)
    (failed,) = _trials(db, broken)
    assert failed.state is TrialState.FAILED
    stored = store.trial_checkpoint(db, first.id, artifacts_dir=artifacts).path
    # Left in the running folder: a complete slot whose worker has not kept it yet (another
    # worker's keep may run first), a failed slot's, a deleted slot's; then a keep runs.
    pending, of_failed, of_gone = (
        checkpoints.running_path(artifacts, i) for i in (second.id, failed.id, 9999)
    )
    for path in (pending, of_failed, of_gone, checkpoints.running_path(artifacts, first.id)):
        path.write_bytes(stored.read_bytes())
    assert (
        checkpoints.keep_checkpoint(
            db, artifacts, first.id, checkpoints.running_path(artifacts, first.id)
        )
        is None
    )
    assert pending.exists()  # its own worker's keep is on its way
    assert not of_failed.exists() and not of_gone.exists()
    assert stored.exists() and _stored(tmp_path, study) == {f"{first.id}.pt", f"{second.id}.pt"}
