"""Files a worker reads and writes for a trial: checkpoints load with
`torch.load(weights_only=True)` (a pickle that would run code is refused and never runs), a
checkpoint path cannot leave the data root, and no file name comes from user input."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from studies import store
from studies.db import Database, TrialState
from studies.plots import LazyCurvesStore, curves_artifact_id
from studies.spec import parse_spec
from studies.worker import WorkerOptions, run_worker
from tests.studies.conftest import tiny_spec, worker_options
from trainer import TrainerError, load_checkpoint


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: what reaches the filesystem does not depend on the database."""
    return f"sqlite:///{tmp_path / 'sweepdoc.db'}"


class _RunsCodeOnLoad:
    """Unpickling this opens (creates) *marker*: proof that a load ran foreign code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def _options(db: Database, tmp_path: Path) -> WorkerOptions:
    return worker_options(db.url, tmp_path, "safety")


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"model": _RunsCodeOnLoad(marker)}, evil)

    with pytest.raises(TrainerError, match=r"not a sweepdoc checkpoint|cannot read"):
        load_checkpoint(evil)
    assert not marker.exists()


def test_a_worker_fine_tuning_from_a_hostile_checkpoint_fails_the_trial_only(
    db: Database, tmp_path: Path
) -> None:
    marker = tmp_path / "code-ran"
    (tmp_path / "data" / "ckpt").mkdir(parents=True)
    torch.save({"model": _RunsCodeOnLoad(marker)}, tmp_path / "data" / "ckpt" / "evil.pt")
    spec = parse_spec(tiny_spec(train={"init_from": "ckpt/evil.pt"}, search={"grid": [0.1]}))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")

    assert run_worker(_options(db, tmp_path)) == 1

    trial = store.get_trial(db, store.list_trials(db, study.id).data[0].id)
    assert trial.state is TrialState.FAILED
    assert trial.error is not None and "checkpoint" in trial.error
    assert not marker.exists()


def test_a_checkpoint_symlinked_out_of_the_data_root_is_never_opened(
    db: Database, tmp_path: Path
) -> None:
    # The API refuses this at submit time; the worker checks again, as the link may change.
    (tmp_path / "data" / "ckpt").mkdir(parents=True)
    outside = tmp_path / "outside.pt"
    marker = tmp_path / "code-ran"
    torch.save({"model": _RunsCodeOnLoad(marker)}, outside)
    os.symlink(outside, tmp_path / "data" / "ckpt" / "link.pt")
    spec = parse_spec(tiny_spec(train={"init_from": "ckpt/link.pt"}, search={"grid": [0.1]}))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")

    run_worker(_options(db, tmp_path))

    trial = store.get_trial(db, store.list_trials(db, study.id).data[0].id)
    assert trial.state is TrialState.FAILED
    assert trial.error is not None and "outside the server's data root" in trial.error
    assert not marker.exists()


def test_no_file_name_comes_from_the_study(db: Database, tmp_path: Path) -> None:
    """A study named like a path: every file the trial writes is named from ids only."""
    name = "a..ETC.passwd-Name"
    spec = parse_spec(tiny_spec(name=name, search={"grid": [0.1]}))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    before = _files(tmp_path)

    assert run_worker(_options(db, tmp_path)) == 1

    assert store.get_study(db, study.id).counts[TrialState.COMPLETE] == 1
    trial_id = store.list_trials(db, study.id).data[0].id
    # The curves plot is written when first opened (what the dashboard does).
    lazy = LazyCurvesStore(tmp_path / "artifacts", render=lambda i: store.trial_curves_png(db, i))
    lazy.open_reader(curves_artifact_id(trial_id, 1)).close()
    written = _files(tmp_path) - before
    assert f"artifacts/{curves_artifact_id(trial_id, 1)}" in written
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    allowed = re.compile(
        rf"artifacts/checkpoints/\d+/\d+\.pt|artifacts/{uuid}|sweepdoc\.db(-wal|-shm)?"
    )
    assert all(allowed.fullmatch(path) for path in written), sorted(written)
    assert not any("etc" in path.lower() or "passwd" in path.lower() for path in written)
