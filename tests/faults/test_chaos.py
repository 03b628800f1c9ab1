"""Chaos (issue 14): seeded rounds on PostgreSQL in which a grid study runs on several
workers (a real ``serve`` with two local workers, plus one ``sweepdoc worker`` of its own)
while a random worker or the server is killed with ``kill -9`` at random moments and
PostgreSQL is restarted once. Afterwards the invariants must hold:

- every grid point completed exactly once (in the queue and in Optuna);
- Optuna's states equal the queue's;
- no orphaned Optuna study or trial (none left RUNNING or WAITING, none without a study);
- no epoch row missing or duplicated, and each point's curves are exactly those of an
  uninterrupted run (a killed trial resumes from its last epoch state).

Every fault is chosen by ``random.Random(seed)``; a failure names the seed and the faults
injected, so a round can be replayed. docs/benchmarks.md ("Reliability") reports the rounds.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState as OptunaState
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from service.supervisor import cpu_threads_per_worker
from studies import store
from studies.db import Database, EpochRow, StudyRow, TrialRow, TrialState, WorkerRow
from studies.optuna_bridge import close_storages
from studies.spec import parse_spec
from tests.faults.postgres_control import PostgresServer, stoppable_postgres
from tests.postgres_server import PostgresUnavailable, create_database, skip_unless_ci
from tests.service.factory import tiny_spec
from tests.service.serve_process import REPO, ServeProcess, pid_alive, serving
from tests.waiting import wait_until
from trainer import METRIC_KEYS, train

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SEEDS = (1, 2, 3)
GRID = (0.2, 0.1, 0.05, 0.02, 0.01, 0.005)
EPOCHS = 12
LOCAL_WORKERS = 2
# Faults per round besides the one PostgreSQL restart. Worker kills never hit a slot twice,
# so with a possible reap during the restart no slot uses up its MAX_ATTEMPTS = 3.
FAULTS = 4
# How long a worker kill waits for a worker running a slot no kill hit yet (packs finish
# together, so every worker may be between slots at the moment the kill is due).
FRESH_SLOT_WAIT_S = 5.0
CHAOS_ENV = {
    "SWEEPDOC_WORKER_POLL_INTERVAL_S": "0.2",
    "SWEEPDOC_WORKER_HEARTBEAT_INTERVAL_S": "0.5",
    # Above the PostgreSQL restart's outage (stop + 1-3 s + start), so writes wait it out.
    "SWEEPDOC_WORKER_STALE_AFTER_S": "8",
    "SWEEPDOC_SHUTDOWN_GRACE_S": "30",
    # CPU only, also on a GPU machine: the curves are compared bit for bit with CPU runs.
    "CUDA_VISIBLE_DEVICES": "",
}
STUDY_TIMEOUT_S = 150.0
# The reconciler settles an orphaned Optuna trial after twice the workers' grace.
SETTLE_TIMEOUT_S = 45.0


@dataclass
class Chaos:
    """The fault injector of the rounds: the server, an external worker, PostgreSQL. Each
    round draws its faults from its own seed (``begin_round``)."""

    pg: PostgresServer
    serve: ServeProcess
    db: Database
    home: Path
    threads: int
    rng: random.Random = field(default_factory=random.Random)
    external: subprocess.Popen[bytes] | None = None
    killed_slots: frozenset[int] = frozenset()
    faults: list[str] = field(default_factory=list)
    restarts: int = 0  # external workers started
    started: float = 0.0  # when the round's faults began (monotonic)
    postgres_restarts: int = 0  # this round's

    def resumes(self) -> int:
        """Attempts so far that resumed a killed one (the workers' log lines)."""
        logs = self.serve.log() + (self.home / "external-worker.log").read_text(errors="replace")
        return logs.count("resumes after epoch")

    def begin_round(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.killed_slots = frozenset()
        self.faults.clear()
        self.postgres_restarts = 0

    def start_external_worker(self) -> None:
        env = self.serve.env()
        command = [sys.executable, "-m", "service", "worker", "--device", "cpu"]
        command += ["--name", f"external-{self.restarts}", "--torch-threads", str(self.threads)]
        self.restarts += 1
        with (self.home / "external-worker.log").open("ab") as log:
            self.external = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def kill_a_worker(self) -> None:
        """kill -9 of a live worker that runs slots no earlier kill hit (any live one if none
        does within a few seconds). A worker's slots are the queue's RUNNING rows it holds, a
        pack's members included."""
        pool: list[tuple[int, frozenset[int]]] = []
        deadline = time.monotonic() + FRESH_SLOT_WAIT_S
        while True:
            live = [(pid, s) for pid, s in _retry(lambda: _worker_slots(self.db)) if pid_alive(pid)]
            pool = [(pid, s) for pid, s in live if s and not s & self.killed_slots]
            if pool or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # between two slots, or a reap pending: wait for the next claim
        pool = pool or [(pid, s) for pid, s in live if not s]
        if not pool:  # every live worker runs a slot already hit: the server instead
            self.kill_the_server()
            return
        pid, slots = self.rng.choice(sorted(pool, key=lambda p: p[0]))
        self.killed_slots |= slots
        os.kill(pid, signal.SIGKILL)
        self.faults.append(f"{self._clock()} kill -9 worker pid {pid} (slots {sorted(slots)})")
        if self.external is not None and pid == self.external.pid:
            self.external.wait()
            self.start_external_worker()  # a lost machine replaced; local ones are restarted

    def kill_the_server(self) -> None:
        self.serve.kill_9()
        down_s = self.rng.uniform(0.5, 2.0)
        time.sleep(down_s)
        self.serve.restart()
        self.faults.append(f"{self._clock()} kill -9 serve, restarted after {down_s:.1f} s")

    def restart_postgres(self) -> None:
        self.pg.stop()
        down_s = self.rng.uniform(1.0, 3.0)
        time.sleep(down_s)
        self.pg.start()
        self.faults.append(
            f"{self._clock()} PostgreSQL stopped (fast), started after {down_s:.1f} s"
        )
        self.postgres_restarts += 1

    def _clock(self) -> str:
        return f"t={time.monotonic() - self.started:.1f}s"

    def run(self, study_id: int) -> None:
        """Inject the round's faults while the study runs, each once the study has stored a
        random number of epoch rows: progress, not wall time, so the faults land on a fast
        machine as on a busy one. The PostgreSQL restart and a worker kill come first (in
        random order), then random worker and server kills."""
        plan = ["postgres", "worker"]
        self.rng.shuffle(plan)
        plan += [self.rng.choice(("worker", "worker", "server")) for _ in range(FAULTS - 1)]
        rows = len(GRID) * EPOCHS
        marks = sorted(self.rng.sample(range(1, rows * 3 // 4), len(plan)))
        self.started = time.monotonic()
        for kind, mark in zip(plan, marks, strict=True):
            _wait(
                lambda m=mark: (
                    _finished(self.db, study_id) or _epochs_stored(self.db, study_id) >= m
                ),
                f"{mark} epoch rows",
                STUDY_TIMEOUT_S,
            )
            if _retry(lambda: _finished(self.db, study_id)):
                self.faults.append(f"{self._clock()} {kind}: study already finished, skipped")
                continue
            {"worker": self.kill_a_worker, "server": self.kill_the_server}.get(
                kind, self.restart_postgres
            )()


def _retry(action: Any, timeout_s: float = 60.0) -> Any:
    """*action*, retried while the database is restarting."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return action()
        except DBAPIError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait(check: Any, what: str, timeout_s: float = 120.0) -> None:
    """wait_until, with each look retried while the database is restarting."""
    wait_until(lambda: _retry(check), what, timeout_s=timeout_s, poll_s=0.1)


def _worker_slots(db: Database) -> list[tuple[int, frozenset[int]]]:
    """Each registered worker's pid and the slots it runs (RUNNING in the queue)."""
    with db.session() as session:
        workers = {
            name: pid
            for name, pid in session.execute(select(WorkerRow.name, WorkerRow.pid))
            if pid is not None
        }
        running = session.execute(
            select(TrialRow.worker, TrialRow.id).where(TrialRow.state == TrialState.RUNNING)
        ).all()
    slots: dict[str, set[int]] = {name: set() for name in workers}
    for name, trial_id in running:
        if name in slots:
            slots[name].add(trial_id)
    return [(workers[name], frozenset(ids)) for name, ids in slots.items()]


def _epochs_stored(db: Database, study_id: int) -> int:
    with db.session() as session:
        count = session.scalar(
            select(func.count(EpochRow.id))
            .join(TrialRow, TrialRow.id == EpochRow.trial_id)
            .where(TrialRow.study_id == study_id)
        )
    return int(count or 0)


def _finished(db: Database, study_id: int) -> bool:
    study = store.get_study(db, study_id)
    return study.progress == 1.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this module's own (each round restarts it)."""
    try:
        with stoppable_postgres() as server:
            yield server
    except PostgresUnavailable as exc:
        skip_unless_ci(exc, f"the chaos test restarts PostgreSQL and needs its binaries: {exc}")


@pytest.fixture(scope="module")
def chaos(pg: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chaos]:
    """One ``serve`` (two local workers) and one external worker on *pg*, for every round:
    each round is a study of its own run under that round's faults."""
    home = tmp_path_factory.mktemp("chaos")
    url = create_database(pg.url)
    serve = ServeProcess(home, database_url=url, workers=LOCAL_WORKERS, env_overrides=CHAOS_ENV)
    db = Database(url)
    threads = cpu_threads_per_worker(LOCAL_WORKERS)  # what serve gives each local worker
    injector = Chaos(pg=pg, serve=serve, db=db, home=home, threads=threads)
    with serving(serve, workers=LOCAL_WORKERS):
        try:
            injector.start_external_worker()
            yield injector
        finally:
            external = injector.external
            if external is not None:
                external.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    external.wait(60)
                if external.poll() is None:
                    external.kill()
            db.dispose()
            close_storages()
            serve.stop()


@pytest.fixture(scope="module")
def reference(chaos: Chaos) -> dict[float, dict[str, Any]]:
    """Each grid point's curves from one uninterrupted run (computed once for all rounds)."""
    return _reference_curves(chaos.threads)


def _reference_curves(threads: int) -> dict[float, dict[str, Any]]:
    """Each grid point trained in one go, in this process, with the workers' thread count."""
    spec = parse_spec(_spec())
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return {
            lr: train(
                spec.to_run_config({"lr": lr}, data_dir=Path("/nonexistent"), device="cpu")
            ).curves()
            for lr in GRID
        }
    finally:
        torch.set_num_threads(before)


def _spec(seed: int = 0) -> dict[str, Any]:
    spec = tiny_spec(f"chaos-{seed}", grid=GRID, epochs=EPOCHS, max_parallel=3)
    spec["data"] = {"train_subset": 300}
    spec["model"] = {"arch": "simple", "width": 4, "stages": 1, "dropout": 0.1}
    spec["train"] = {"epochs": EPOCHS, "batch_size": 16, "schedule": "cosine"}
    return spec


@pytest.mark.parametrize("seed", SEEDS)
def test_chaos_round_keeps_every_invariant(
    chaos: Chaos, reference: dict[float, dict[str, Any]], seed: int
) -> None:
    chaos.begin_round(seed)
    resumed_before = chaos.resumes()
    response = _retry(lambda: chaos.serve.http.post("/v1/studies", json=_spec(seed)))
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    chaos.run(study_id)
    # A round whose faults all missed the study would prove nothing: it must have restarted
    # PostgreSQL and killed a worker mid-trial while the study ran.
    assert chaos.postgres_restarts == 1 and chaos.killed_slots, f"seed {seed}: {chaos.faults}"
    _wait(lambda: _finished(chaos.db, study_id), "the study to end", STUDY_TIMEOUT_S)
    violations = _violations(chaos.db, study_id, reference)
    resumed = chaos.resumes() - resumed_before
    record = f"seed {seed}, faults: {chaos.faults}, attempts resumed: {resumed}"
    assert not violations, f"{record}\n" + "\n".join(violations)
    print(f"chaos round {record}")  # the round's record, shown with -s


def _violations(db: Database, study_id: int, reference: dict[float, dict[str, Any]]) -> list[str]:
    """Every broken invariant of the finished study, each in a sentence (empty: all hold)."""
    found: list[str] = []
    slots = store.list_trials(db, study_id).data
    states = Counter(t.state for t in slots)
    if states != {TrialState.COMPLETE: len(GRID)}:
        found.append(f"queue: slot states {dict(states)}, expected {len(GRID)} complete")
    lrs = Counter(t.params.get("lr") for t in slots)
    if lrs != dict.fromkeys(GRID, 1):
        found.append(f"queue: grid points {dict(lrs)}, expected each of {GRID} once")

    name = store.get_study(db, study_id).optuna_study_name
    frozen = _settled_optuna_trials(db, name)
    unfinished = [t.number for t in frozen if t.state in (OptunaState.RUNNING, OptunaState.WAITING)]
    if unfinished:
        found.append(f"optuna: trials {unfinished} still RUNNING/WAITING (orphaned)")
    completed = Counter(t.params.get("lr") for t in frozen if t.state == OptunaState.COMPLETE)
    if completed != dict.fromkeys(GRID, 1):
        found.append(f"optuna: COMPLETE trials per lr {dict(completed)}, expected 1 each")
    others = {t.state.name for t in frozen if t.state != OptunaState.COMPLETE}
    if others - {"FAIL"}:
        found.append(f"optuna: states besides COMPLETE {sorted(others)}, expected FAIL only")
    by_number = {t.number: t for t in frozen}
    for slot in slots:
        trial = (
            by_number.get(slot.optuna_trial_number)
            if slot.optuna_trial_number is not None
            else None
        )
        if trial is None or trial.state != OptunaState.COMPLETE:
            shown = trial.state.name if trial is not None else None
            found.append(f"slot {slot.id}: queue {slot.state}, its Optuna trial {shown}")
        elif sorted(trial.intermediate_values) != list(range(1, EPOCHS + 1)):
            found.append(
                f"slot {slot.id}: Optuna reports for epochs {sorted(trial.intermediate_values)}"
            )
    found += _orphaned_studies(db)
    found += _epoch_rows(db, study_id, reference)
    return found


def _settled_optuna_trials(db: Database, name: str) -> list[optuna.trial.FrozenTrial]:
    """Optuna's trials once none is RUNNING or WAITING, or as they are after the
    reconciler had its time."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        storage = optuna.storages.RDBStorage(db.url)
        try:
            trials = optuna.load_study(study_name=name, storage=storage).trials
        finally:
            storage.engine.dispose()
        settled = all(t.state not in (OptunaState.RUNNING, OptunaState.WAITING) for t in trials)
        if settled or time.monotonic() > deadline:
            return trials
        time.sleep(1.0)


def _orphaned_studies(db: Database) -> list[str]:
    storage = optuna.storages.RDBStorage(db.url)
    try:
        in_optuna = {s.study_name for s in storage.get_all_studies()}
    finally:
        storage.engine.dispose()
    with db.session() as session:
        ours = set(session.scalars(select(StudyRow.optuna_study_name)))
    orphans = in_optuna - ours
    return [f"optuna: studies without a sweepdoc study {sorted(orphans)}"] if orphans else []


def _epoch_rows(db: Database, study_id: int, reference: dict[float, dict[str, Any]]) -> list[str]:
    found: list[str] = []
    with db.session() as session:
        duplicated = session.execute(
            select(EpochRow.trial_id, EpochRow.attempt, EpochRow.epoch)
            .join(TrialRow, TrialRow.id == EpochRow.trial_id)
            .where(TrialRow.study_id == study_id)
            .group_by(EpochRow.trial_id, EpochRow.attempt, EpochRow.epoch)
            .having(func.count(EpochRow.id) > 1)
        ).all()
    if duplicated:
        found.append(f"epochs: duplicated (trial, attempt, epoch) rows {duplicated}")
    for slot in store.list_trials(db, study_id).data:
        detail = store.get_trial(db, slot.id)
        epochs = [int(r["epoch"]) for r in detail.epochs]
        if epochs != list(range(1, EPOCHS + 1)):
            found.append(f"slot {slot.id}: epochs stored {epochs}, expected 1..{EPOCHS} once")
            continue
        expected = reference[detail.params["lr"]]
        differing = [k for k in METRIC_KEYS if detail.curves[k] != expected[k]]
        if differing:
            found.append(
                f"slot {slot.id} (attempt {detail.attempt}): {differing} differ from the "
                "uninterrupted run's"
            )
    return found
