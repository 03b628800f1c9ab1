"""Packed runs through a real worker (issue 15): K slots of one study trained as one model,
each member with its own life (epoch rows, Optuna trial, divergence stop, result), the
same curves as alone, and a killed packed worker's slots reaped and queued again."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from optuna.trial import TrialState as OptunaState

from studies import queue, store
from studies.db import Database, TrialState, WorkerRow, utcnow
from studies.pack_run import ATTR_PACKED_WITH
from studies.packing import CPU_AUTO_CAP, pack_limit
from studies.schemas import TrialDetail
from studies.spec import parse_spec
from studies.worker import WorkerOptions, run_worker
from tests.studies.conftest import optuna_trials, start_worker_process, tiny_spec, worker_options
from tests.waiting import wait_until

GRID = [0.1, 0.05, 0.02]


def _options(db: Database, tmp_path: Path, **values: Any) -> WorkerOptions:
    return worker_options(db.url, tmp_path, "packer", torch_threads=1, **values)


def _run_study(db: Database, tmp_path: Path, **overrides: Any) -> list[TrialDetail]:
    spec = parse_spec(tiny_spec(**overrides))
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    run_worker(_options(db, tmp_path))
    trials = store.list_trials(db, study.id).data
    return [store.get_trial(db, t.id) for t in sorted(trials, key=lambda t: t.number)]


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_a_packed_study_completes_each_member_as_its_unpacked_run(
    db: Database, tmp_path: Path, optimizer: str
) -> None:
    train = {"epochs": 3, "optimizer": optimizer, "weight_decay": 1e-4}
    packed = _run_study(
        db, tmp_path, search={"grid": GRID}, train=train, max_pack=3, max_parallel=3
    )
    alone = _run_study(db, tmp_path, search={"grid": GRID}, train=train, max_pack=1)

    ids = {t.id for t in packed}
    for trial in packed:
        assert trial.state is TrialState.COMPLETE, trial.error
        assert sorted(trial.packed_with or []) == sorted(ids - {trial.id})
        assert trial.epochs_done == 3
    for trial in alone:
        assert trial.state is TrialState.COMPLETE and not trial.packed_with
    for with_others, by_itself in zip(packed, alone, strict=True):
        assert with_others.params == by_itself.params
        for metric in ("train_loss", "val_loss", "val_acc"):
            assert with_others.curves[metric] == pytest.approx(
                by_itself.curves[metric], rel=1e-4, abs=1e-5
            ), metric
        assert with_others.label == by_itself.label

    study = store.get_study(db, packed[0].study_id)
    in_optuna = optuna_trials(db.url, study.optuna_study_name)
    assert sorted(t.state for t in in_optuna) == [OptunaState.COMPLETE] * len(GRID)
    for frozen in in_optuna:
        mine = frozen.user_attrs["sweepdoc_trial_id"]
        assert sorted(frozen.user_attrs[ATTR_PACKED_WITH]) == sorted(ids - {mine})
        assert len(frozen.intermediate_values) == 3  # every member reports its own epochs


def test_a_diverging_member_leaves_the_pack_and_the_others_complete(
    db: Database, tmp_path: Path
) -> None:
    grid = [0.05, 10.0, 0.02]  # the middle one blows up within its first epochs
    trials = _run_study(
        db,
        tmp_path,
        search={"grid": grid},
        model={"norm": "none"},
        train={"epochs": 10, "momentum": 0.9, "batch_size": 16},
        max_pack=3,
        max_parallel=3,
    )

    by_lr = {t.params["lr"]: t for t in trials}
    diverged = by_lr[10.0]
    assert diverged.state is TrialState.PRUNED, diverged.stop_reason
    assert diverged.label == "diverged" and diverged.epochs_done < 10
    assert len(diverged.packed_with) == 2
    for lr in (0.05, 0.02):
        assert by_lr[lr].state is TrialState.COMPLETE, by_lr[lr].stop_reason
        assert by_lr[lr].epochs_done == 10
        assert len(by_lr[lr].packed_with or []) == 2


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_sampled_slots_get_the_samplers_params_one_ask_each_and_pack(
    db: Database, tmp_path: Path, sampler: str
) -> None:
    """A pack of sampled slots asks the sampler once per member, before any has a result."""
    search = {"sampler": sampler, "n_trials": 4, "lr_low": 0.001, "lr_high": 0.1}
    trials = _run_study(db, tmp_path, search=search, max_pack=4, max_parallel=4)

    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    lrs = [t.params["lr"] for t in trials]
    assert len(set(lrs)) == 4 and all(0.001 <= lr <= 0.1 for lr in lrs)
    assert all(len(t.packed_with) == 3 for t in trials)
    study = store.get_study(db, trials[0].study_id)
    in_optuna = optuna_trials(db.url, study.optuna_study_name)
    assert sorted(t.params["lr"] for t in in_optuna) == sorted(lrs)  # one ask per slot


def test_the_pack_size_follows_the_spec_the_worker_and_the_device(tmp_path: Path) -> None:
    def limit(worker_max: int | None = None, **overrides: Any) -> int:
        spec = parse_spec(tiny_spec(**overrides))
        return pack_limit(spec, device="cpu", worker_max=worker_max, data_dir=tmp_path)

    assert limit(max_pack="auto") == CPU_AUTO_CAP  # width 4: narrow enough to pay on a CPU
    assert limit(max_pack="auto", model={"width": 32}) == 1  # too wide: alone on a CPU
    # 28×28 images: packing is measured slower on a CPU (docs/benchmarks.md 2b), so alone;
    # an explicit max_pack still packs them.
    assert limit(max_pack="auto", dataset="mnist", data={"train_subset": None}) == 1
    assert limit(max_pack=4, dataset="mnist", data={"train_subset": None}) == 4
    assert limit(max_pack=3) == 3 and limit(max_pack=3, worker_max=2) == 2
    assert limit(max_pack="auto", worker_max=1) == 1
    assert limit(max_pack=4, model={"arch": "simple", "norm": "none"}) == 4
    assert limit(max_pack=4, search={"sampler": "range_test"}) == 1


def test_a_study_that_cannot_pack_trains_its_trials_alone(db: Database, tmp_path: Path) -> None:
    """Members whose sampled configs differ in more than optimizer settings (here the
    batch size) train one by one, as before packing."""
    trials = _run_study(
        db,
        tmp_path,
        search={"grid": [0.05], "extra": {"batch_size": [32, 64]}},
        max_pack=2,
        max_parallel=2,
    )

    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert all(not t.packed_with for t in trials)


def test_kill_9_of_a_packed_worker_reaps_and_requeues_every_member(
    db: Database, tmp_path: Path
) -> None:
    spec = parse_spec(
        tiny_spec(
            search={"grid": GRID},
            train={"epochs": 50, "batch_size": 8},
            max_pack=3,
            max_parallel=3,
        )
    )
    study = store.submit_study(db, spec, artifacts_dir=tmp_path / "artifacts")
    options = _options(db, tmp_path, heartbeat_interval_s=0.5, stale_after_s=10.0)
    proc = start_worker_process(options, tmp_path / "worker.log")
    try:

        def all_members_mid_run() -> bool:
            trials = store.list_trials(db, study.id).data
            return all(t.state is TrialState.RUNNING and t.epochs_done >= 1 for t in trials)

        wait_until(all_members_mid_run, "the pack to be mid-run", timeout_s=180)
        with db.session() as session:
            pid = session.get_one(WorkerRow, "packer").pid
        assert pid == proc.pid
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()

    reaped = queue.reap_stale(db, now=utcnow() + timedelta(seconds=11))

    ids = {t.id for t in store.list_trials(db, study.id).data}
    assert {r.trial_id for r in reaped} == ids and all(r.requeued for r in reaped)
    for trial_id in ids:
        trial = store.get_trial(db, trial_id)
        assert trial.state is TrialState.WAITING
        assert [a.state for a in trial.attempts] == [TrialState.FAILED]
        assert "heartbeat" in (trial.attempts[0].error or "")
