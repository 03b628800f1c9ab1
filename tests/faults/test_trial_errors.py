"""A trial whose dataset file is corrupt fails alone, with its error text stored, and the
same worker goes on with the next trial (a real worker loop on a real SQLite file)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from studies import store
from studies.db import Database, StudyStatus, TrialState
from studies.optuna_bridge import close_storages
from studies.schema_setup import create_schema
from studies.spec import parse_spec
from studies.worker import run_worker
from tests.studies.conftest import tiny_spec, worker_options
from trainer._sources import _MNIST_FILES


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'sweepdoc.db'}")
    create_schema(database)
    return database


def write_corrupt_mnist(data_dir: Path) -> Path:
    """MNIST in torchvision's layout whose training images are not gzip at all (a download
    cut short and overwritten by an HTML error page, say)."""
    raw = data_dir / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in _MNIST_FILES:
        (raw / f"{stem}.gz").write_bytes(b"<html>502 Bad Gateway</html>\n")
    return raw / "train-images-idx3-ubyte.gz"


def test_a_corrupt_dataset_file_fails_its_trial_alone_and_the_worker_goes_on(
    db: Database, tmp_path: Path
) -> None:
    torch.set_num_threads(1)
    data_dir = tmp_path / "data"
    corrupt = write_corrupt_mnist(data_dir)
    before = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    broken = store.submit_study(
        db,
        parse_spec(tiny_spec(dataset="mnist", search={"grid": [0.1, 0.01]})),
        artifacts_dir=tmp_path,
    )
    after = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.05]})), artifacts_dir=tmp_path
    )
    options = worker_options(db.url, tmp_path, "one")
    try:
        assert run_worker(options) == 4  # one worker, every slot, in order, and it is still fine

        for trial in store.list_trials(db, broken.id).data:
            detail = store.get_trial(db, trial.id)
            assert detail.state is TrialState.FAILED
            assert detail.error is not None
            assert detail.error.startswith("DatasetError: mnist: cannot decompress")
            # The file, named relative to the worker's data root (never its absolute path).
            assert str(corrupt.relative_to(options.data_dir)) in detail.error
            assert str(options.data_dir) not in detail.error
            assert [a.state for a in detail.attempts] == [
                TrialState.FAILED
            ]  # no retry of a bug in the data
        assert store.get_study(db, broken.id).status is StudyStatus.FAILED
        for good in (before, after):
            (trial,) = store.list_trials(db, good.id).data
            assert trial.state is TrialState.COMPLETE and trial.label is not None
            assert store.get_study(db, good.id).status is StudyStatus.COMPLETED
    finally:
        db.dispose()
        close_storages()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_out_of_memory_fails_its_trial_alone_and_the_worker_goes_on(
    db: Database, tmp_path: Path
) -> None:
    # A real OOM from the real allocator: this process may use 128 MiB of the GPU, which a
    # 1024-channel CNN on a whole-dataset batch exceeds and a 4-channel one does not.
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(128 * 2**20 / total, 0)
    huge = tiny_spec(
        data={"train_subset": None},
        model={"width": 1024, "stages": 2},
        train={"batch_size": 8192},
        search={"grid": [0.1]},
    )
    too_big = store.submit_study(db, parse_spec(huge), artifacts_dir=tmp_path)
    fits = store.submit_study(
        db, parse_spec(tiny_spec(search={"grid": [0.1]})), artifacts_dir=tmp_path
    )
    options = worker_options(db.url, tmp_path, "gpu", device="cuda")
    try:
        assert run_worker(options) == 2

        (oom,) = store.list_trials(db, too_big.id).data
        detail = store.get_trial(db, oom.id)
        assert detail.state is TrialState.FAILED
        assert detail.error is not None and detail.error.startswith("OutOfMemoryError")
        (fine,) = store.list_trials(db, fits.id).data
        assert fine.state is TrialState.COMPLETE and fine.label is not None
        assert store.get_trial(db, fine.id).device == "cuda"
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        torch.cuda.empty_cache()
        db.dispose()
        close_storages()
