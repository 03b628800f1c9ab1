"""`sweepdoc serve` end to end: a real server process, 2 real worker processes, a real database
(a SQLite file, and PostgreSQL), studies submitted over HTTP.

The tests of this module share one server per backend and run in file order: a grid study,
the dashboard in a browser, a worker killed mid-trial, the server killed (kill -9) and
restarted (slow), then a clean SIGTERM shutdown.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from studies.diagnosis import Curves, live_check
from tests.postgres_server import create_database
from tests.service.factory import tiny_spec
from tests.service.serve_process import (
    ServeProcess,
    child_pids,
    free_port,
    pid_alive,
    run_cli,
    serving,
)

GRID = (0.1, 0.01, 0.001)
WORKERS = 2
# A worker's heartbeat grace: long enough that a live worker on two busy cores is never
# taken for dead (the tests assert attempt == 1 for every trial no one killed), short
# enough that the killed worker's trial is retried within seconds.
SERVE_ENV = {"SWEEPDOC_WORKER_STALE_AFTER_S": "15"}
# Measured (SGD lr 3 with momentum, no normalization, gradients clipped to norm 1, on
# digits): the training loss doubles from epoch 1 to 2 (4.2 → 8.3) and stays finite, the
# accuracy stays at chance; the live check stops the run at epoch 3, the trainer never would.
EXPLODING: dict[str, dict[str, Any]] = {
    "model": {"arch": "simple", "width": 8, "stages": 2, "norm": "none"},
    "train": {"epochs": 12, "batch_size": 64, "momentum": 0.9, "grad_clip": 1.0},
}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServeProcess]:
    home = tmp_path_factory.mktemp(f"serve-{request.param}")
    if request.param == "postgres":
        database_url = create_database(request.getfixturevalue("postgres_server"))
    else:
        database_url = f"sqlite:///{home / 'sweepdoc.db'}"
    process = ServeProcess(
        home, database_url=database_url, workers=WORKERS, env_overrides=SERVE_ENV
    )
    with serving(process, workers=WORKERS):
        process.wait_for_workers(WORKERS)
        yield process


@pytest.fixture(scope="module")
def finished_grid(server: ServeProcess) -> dict[str, Any]:
    """A grid study submitted over HTTP and run to the end by the two workers."""
    response = server.http.post("/v1/studies", json=tiny_spec("e2e-grid", grid=GRID, epochs=3))
    assert response.status_code == 201, response.text
    return server.wait_for_study(response.json()["id"])


def optuna_trials(server: ServeProcess, study: dict[str, Any]) -> list[optuna.trial.FrozenTrial]:
    """The study's trials as `optuna.load_study` on the same database URL sees them."""
    storage = optuna.storages.RDBStorage(server.database_url)
    try:
        loaded = optuna.load_study(study_name=study["optuna_study_name"], storage=storage)
        return loaded.get_trials(deepcopy=True)
    finally:
        storage.engine.dispose()  # close its connections now, not at garbage collection


def dashboard_study(server: ServeProcess, study: dict[str, Any]) -> dict[str, Any]:
    """The study as the Optuna dashboard's own JSON API serves it."""
    listed = server.get("/api/studies")["study_summaries"]
    (summary,) = [s for s in listed if s["study_name"] == study["optuna_study_name"]]
    detail: dict[str, Any] = server.get(f"/api/studies/{summary['study_id']}")
    detail["study_id"] = summary["study_id"]
    return detail


def test_grid_runs_every_point_exactly_once(
    server: ServeProcess, finished_grid: dict[str, Any]
) -> None:
    study = finished_grid
    trials = server.get(f"/v1/studies/{study['id']}/trials")["data"]

    assert study["status"] == "completed"
    assert study["progress"] == 1.0
    assert study["counts"]["complete"] == len(GRID)
    assert sorted(t["params"]["lr"] for t in trials) == sorted(GRID)
    for trial in trials:
        assert trial["state"] == "complete"
        assert trial["attempt"] == 1  # nobody else ran it
        assert trial["epochs_done"] == 3
        assert trial["label"] is not None
        detail = server.get(f"/v1/trials/{trial['id']}")
        assert detail["worker"] and detail["device"] == "cpu"
        assert len(detail["curves"]["val_acc"]) == 3
        assert detail["diagnosis"]["label"] == trial["label"]
    # Both workers took part: the two trials ran in parallel, not one after the other.
    workers = {server.get(f"/v1/trials/{t['id']}")["worker"] for t in trials}
    assert len(workers) == WORKERS


def test_optuna_and_the_dashboard_agree_with_the_api(
    server: ServeProcess, finished_grid: dict[str, Any]
) -> None:
    study = finished_grid
    trials = {
        t["optuna_trial_number"]: t for t in server.get(f"/v1/studies/{study['id']}/trials")["data"]
    }

    frozen = optuna_trials(server, study)
    complete = [t for t in frozen if t.state == optuna.trial.TrialState.COMPLETE]
    assert Counter(t.params["lr"] for t in complete) == Counter(GRID)
    for trial in complete:
        ours = trials[trial.number]
        assert trial.params["lr"] == ours["params"]["lr"]
        assert trial.user_attrs["label"] == ours["label"]
        assert trial.value == pytest.approx(ours["best_val_acc"])
    best = max(complete, key=lambda t: t.value or 0.0)
    assert study["best_trial"]["lr"] == best.params["lr"]
    assert study["best_trial"]["value"] == pytest.approx(best.value)

    dashboard = dashboard_study(server, study)
    shown = [t for t in dashboard["trials"] if t["state"] == "Complete"]
    assert len(shown) == len(GRID)
    for trial in shown:
        ours = trials[trial["number"]]
        (lr,) = [p for p in trial["params"] if p["name"] == "lr"]
        assert float(lr["param_external_value"]) == ours["params"]["lr"]
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        assert attrs["label"] == ours["label"]
        assert trial["note"]["body"], "the diagnosis note is missing"
        # The curves plot is an artifact of the same store the dashboard reads.
        (artifact, *_) = trial["artifacts"]
        image = server.http.get(
            f"/artifacts/{dashboard['study_id']}/{trial['trial_id']}/{artifact['artifact_id']}"
        )
        assert image.status_code == 200
        assert image.content.startswith(b"\x89PNG")


def test_serve_fails_an_optuna_trial_that_no_slot_holds(
    server: ServeProcess, finished_grid: dict[str, Any]
) -> None:
    """The server's reconciler runs: a RUNNING Optuna trial that no slot's attempt holds (what
    a reaped attempt leaves when the reaper's Optuna write is lost) is failed."""
    storage = optuna.storages.RDBStorage(server.database_url)
    try:
        study_id = storage.get_study_id_from_name(finished_grid["optuna_study_name"])
        lost = optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)
        lost.datetime_start = datetime.now() - timedelta(hours=1)  # Optuna's naive local time
        orphan = storage.create_new_trial(study_id, template_trial=lost)
        deadline = time.monotonic() + 120
        while storage.get_trial(orphan).state == optuna.trial.TrialState.RUNNING:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.5)
        assert storage.get_trial(orphan).state == optuna.trial.TrialState.FAIL
    finally:
        storage.engine.dispose()
    assert "reconciler" in server.log()


def test_plots_and_study_diagnosis_are_served(
    server: ServeProcess, finished_grid: dict[str, Any]
) -> None:
    study = finished_grid
    trial = server.get(f"/v1/studies/{study['id']}/trials")["data"][0]

    for path in (f"/v1/trials/{trial['id']}/curves.png", f"/v1/studies/{study['id']}/lr.png"):
        response = server.http.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(b"\x89PNG")
    summary = server.get(f"/v1/studies/{study['id']}/diagnosis")
    assert summary["next_step"]
    assert server.get(f"/v1/trials/{trial['id']}/diagnosis")["label"] == trial["label"]


@pytest.mark.browser
def test_the_dashboard_shows_the_study_and_a_trial_note_in_chromium(
    server: ServeProcess, finished_grid: dict[str, Any], tmp_path: Path
) -> None:
    from tests.service.browser import dashboard_screenshot

    if server.database_url.startswith("postgresql"):
        pytest.skip("the browser check runs once, against the SQLite server")
    study = finished_grid
    dashboard = dashboard_study(server, study)
    trial = next(t for t in dashboard["trials"] if t["state"] == "Complete")
    trial_number = trial["number"]
    note_line = trial["note"]["body"].strip().splitlines()[0].lstrip("# ").strip()

    text = dashboard_screenshot(
        server.url,
        study_id=dashboard["study_id"],
        study_name=study["optuna_study_name"],
        trial_number=trial_number,
        expect_text=note_line,
        screenshot=tmp_path / "dashboard.png",
    )

    assert study["optuna_study_name"] in text
    assert note_line in text
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000


def sweepdoc(*args: str, timeout_s: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI, as a user would, with a clean SWEEPDOC_* environment."""
    return run_cli(*args, timeout_s=timeout_s)


def test_cli_submit_follow_then_status(server: ServeProcess, tmp_path: Path) -> None:
    if server.database_url.startswith("postgresql"):
        pytest.skip("the CLI talks HTTP only; checked once, against the SQLite server")
    spec_file = tmp_path / "study.yaml"
    spec_file.write_text(yaml.safe_dump(tiny_spec("cli-follow", grid=(0.1, 0.001), epochs=3)))

    submitted = sweepdoc("submit", str(spec_file), "--follow", "--url", server.url)

    out = submitted.stdout
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "submitted study" in out
    assert f"dashboard: {server.url}/dashboard/studies/" in out  # a link to the study itself
    study_id = int(out.split("submitted study ")[1].split()[0])
    trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
    for trial in trials:
        printed_lr = "1e-01" if trial["params"]["lr"] == 0.1 else "1e-03"
        # Off a terminal, progress is one line per change, down to each trial's outcome ...
        progress = f"trial {trial['number']} lr {printed_lr}: complete: {trial['label']}"
        assert progress in out
        # ... then the report: each trial's label with its evidence.
        assert f"lr {printed_lr} → {trial['label']}: " in out
    assert "Next step:" in out
    assert "Traceback" not in out + submitted.stderr

    listed = sweepdoc("status", "--url", server.url)
    assert listed.returncode == 0, listed.stderr
    assert "cli-follow" in listed.stdout
    one = sweepdoc("status", str(study_id), "--url", server.url)
    assert one.returncode == 0, one.stderr
    assert "completed" in one.stdout and "Next step:" in one.stdout


def test_cli_errors_are_one_clear_message(server: ServeProcess, tmp_path: Path) -> None:
    if server.database_url.startswith("postgresql"):
        pytest.skip("the CLI talks HTTP only; checked once, against the SQLite server")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataset": "digits", "train": {"epochs": 0}}))

    invalid = sweepdoc("submit", str(bad), "--url", server.url)
    nobody = sweepdoc("status", "--url", f"http://127.0.0.1:{free_port()}")
    missing = sweepdoc("status", "999", "--url", server.url)

    assert invalid.returncode == 2
    assert "train.epochs" in invalid.stderr
    assert nobody.returncode == 1
    assert "cannot reach" in nobody.stderr
    assert missing.returncode == 1
    assert "study 999 does not exist" in missing.stderr
    for run in (invalid, nobody, missing):
        assert "Traceback" not in run.stdout + run.stderr


def test_a_worker_killed_mid_trial_still_ends_with_every_point_once(
    server: ServeProcess,
) -> None:
    grid = (0.05, 0.005)
    response = server.http.post("/v1/studies", json=tiny_spec("e2e-kill", grid=grid, epochs=8))
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]

    victim = _running_trial_after_one_epoch(server, study_id)
    pid = _pid_of_worker(server, victim["worker"])
    os.kill(pid, signal.SIGKILL)

    study = server.wait_for_study(study_id)
    assert study["status"] == "completed", study
    trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
    assert sorted(t["params"]["lr"] for t in trials) == sorted(grid)
    assert {t["state"] for t in trials} == {"complete"}
    killed = server.get(f"/v1/trials/{victim['id']}")
    assert killed["attempt"] == 2
    assert [a["state"] for a in killed["attempts"]] == ["failed", "complete"]
    assert "heartbeat" in (killed["attempts"][0]["error"] or "")
    assert killed["attempts"][0]["worker"] == victim["worker"]
    assert len(killed["curves"]["val_acc"]) == 8  # the retry ran from the start, in full

    frozen = optuna_trials(server, study)
    complete = [t for t in frozen if t.state == optuna.trial.TrialState.COMPLETE]
    assert Counter(t.params["lr"] for t in complete) == Counter(grid)
    failed = [t for t in frozen if t.state == optuna.trial.TrialState.FAIL]
    assert [t.params["lr"] for t in failed] == [victim["params"]["lr"]]
    # The supervisor started a replacement for the killed worker.
    assert pid not in server.local_workers(WORKERS)


def test_cancel_stops_running_trials_at_their_next_epoch(server: ServeProcess) -> None:
    spec = tiny_spec("e2e-cancel", grid=(0.03, 0.003, 0.0003), epochs=40, max_parallel=1)
    response = server.http.post("/v1/studies", json=spec)
    study_id = response.json()["id"]
    running = _running_trial_after_one_epoch(server, study_id)

    cancelled = server.http.post(f"/v1/studies/{study_id}/cancel", json={})

    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert server.wait_for_study(study_id)["status"] == "cancelled"
    stopped = _wait_until_finished(server, running["id"])
    assert stopped["state"] == "pruned"
    assert "cancel" in (stopped["stop_reason"] or "")
    assert 1 <= stopped["epochs_done"] < 40
    assert len(stopped["curves"]["val_acc"]) == stopped["epochs_done"]  # its epochs are kept
    others = [
        t for t in server.get(f"/v1/studies/{study_id}/trials")["data"] if t["id"] != running["id"]
    ]
    assert all(t["epochs_done"] == 0 and t["state"] != "complete" for t in others)
    # Cancelling again is harmless; cancelling a finished study is a conflict.
    assert server.http.post(f"/v1/studies/{study_id}/cancel", json={}).status_code == 200


def test_a_run_whose_loss_explodes_but_stays_finite_is_stopped_live_as_diverged(
    server: ServeProcess,
) -> None:
    spec = {**tiny_spec("e2e-explode", grid=(3.0,)), **EXPLODING}
    response = server.http.post("/v1/studies", json=spec)
    assert response.status_code == 201, response.text
    study = server.wait_for_study(response.json()["id"])

    (listed,) = server.get(f"/v1/studies/{study['id']}/trials")["data"]
    trial = server.get(f"/v1/trials/{listed['id']}")
    curves = trial["curves"]
    # The recipe does what it is here for: the loss explodes, and every value stays finite
    # (served as null otherwise), so the trainer's own non-finite stop never fires.
    assert None not in curves["train_loss"] + curves["val_loss"]
    assert max(curves["train_loss"]) >= 1.5 * curves["train_loss"][0], curves["train_loss"]
    # Stopped by the worker's live check, at the first epoch at which it says diverged.
    fires = [
        epoch
        for epoch in range(1, len(curves["train_loss"]) + 1)
        if live_check(Curves.model_validate(_prefix(curves, epoch))) is not None
    ]
    stopped_at = trial["epochs_done"]
    assert fires and fires[0] == stopped_at < EXPLODING["train"]["epochs"], (fires, trial)
    assert trial["state"] == "pruned" and trial["label"] == "diverged"
    assert f"live divergence check at epoch {stopped_at}" in (trial["stop_reason"] or "")
    assert trial["diagnosis"]["label"] == "diverged" and trial["attempt"] == 1
    assert study["status"] == "completed" and study["progress"] == 1.0
    # Optuna agrees: the trial is PRUNED, with one report per epoch run, labeled diverged.
    (frozen,) = optuna_trials(server, study)
    assert frozen.state == optuna.trial.TrialState.PRUNED
    assert sorted(frozen.intermediate_values) == list(range(1, stopped_at + 1))
    assert frozen.user_attrs["label"] == "diverged"


def _prefix(curves: dict[str, Any], epochs: int) -> dict[str, Any]:
    """The curves JSON as it stood after *epochs* epochs (what the live check saw then)."""
    return {
        key: value[:epochs] if isinstance(value, list) else value for key, value in curves.items()
    }


@pytest.mark.slow  # 20-45 s per backend: the survivors finish 60 epochs before the checks
def test_kill_9_of_the_server_loses_nothing_and_the_restart_adopts_its_workers(
    server: ServeProcess,
) -> None:
    epochs = 60
    # Small batches: both trials train together for several seconds, so this test (on a
    # busy machine, polling) sees them both mid-run before it kills the server.
    spec = tiny_spec("e2e-server-kill", grid=(0.04, 0.004), epochs=epochs)
    spec["train"]["batch_size"] = 8
    busy = server.http.post("/v1/studies", json=spec).json()
    running = _all_running_after_one_epoch(server, busy["id"], count=2)
    # Submitted while every worker is busy: waiting when the server dies (unless a busy
    # trial ended in the meantime and its worker took one; either way none may be lost).
    queued = server.http.post(
        "/v1/studies", json=tiny_spec("e2e-queued", grid=(0.03, 0.003), epochs=2)
    ).json()
    before = {
        s["id"]: s["counts"] for s in server.get("/v1/studies", params={"limit": 200})["data"]
    }
    survivors = server.local_workers(WORKERS)

    server.kill_9()
    killed_at = datetime.now(UTC)

    assert all(pid_alive(pid) for pid in survivors), "a worker died with its server"
    server.restart()
    # Every study and trial is there.
    after = server.get("/v1/studies", params={"limit": 200})["data"]
    assert {s["id"] for s in after} == set(before)
    for study_id, counts in before.items():
        assert sum(server.get(f"/v1/studies/{study_id}")["counts"].values()) == sum(counts.values())
    # The restarted server never runs more workers than planned: a slot's new worker starts
    # only once the old one, finishing its trial, has exited.
    assert server.process is not None
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        # The server's children first, then the survivors: a survivor that exits between
        # the two reads (and the new worker started for it) is then counted by neither,
        # never by both, which read the other way round fails at random on busy cores.
        children = child_pids(server.process.pid)
        alive = [pid for pid in survivors if pid_alive(pid)]
        if not alive:
            break
        assert len(children) + len(alive) <= WORKERS, (children, alive)
        time.sleep(0.2)
    assert not alive, "a worker of the killed server did not exit after its trial"

    finished = server.wait_for_study(busy["id"])
    assert finished["status"] == "completed", finished
    across_the_kill = 0
    for trial in running:
        detail = server.get(f"/v1/trials/{trial['id']}")
        assert detail["state"] == "complete"
        assert detail["attempt"] == 1, "the trial was run again instead of finished"
        assert [a["state"] for a in detail["attempts"]] == ["complete"]
        assert detail["epochs_done"] == epochs and len(detail["curves"]["val_acc"]) == epochs
        assert detail["label"] is not None
        across_the_kill += datetime.fromisoformat(detail["finished_at"]) > killed_at
    assert across_the_kill >= 1, "no trial was still training when the server died"
    assert "finishing the current trial, then exiting" in server.log()
    # Nothing queued was lost: the queued study runs to the end, each slot once.
    assert server.wait_for_study(queued["id"])["status"] == "completed"
    for trial in server.get(f"/v1/studies/{queued['id']}/trials")["data"]:
        assert trial["state"] == "complete" and trial["attempt"] == 1
    assert not survivors & server.local_workers(WORKERS)


def test_sigterm_stops_the_server_and_its_workers_cleanly(server: ServeProcess) -> None:
    pids = set(server.worker_pids)
    # A trial in flight when the signal arrives goes back to the queue, not into limbo.
    response = server.http.post("/v1/studies", json=tiny_spec("e2e-stop", grid=(0.02,), epochs=30))
    study_id = response.json()["id"]
    running = _running_trial_after_one_epoch(server, study_id)

    code = server.stop()

    assert code == 0, server.log()
    assert not [pid for pid in pids if pid_alive(pid)], "a worker outlived its server"
    assert "Traceback" not in server.log()
    restarted = ServeProcess(server.home, database_url=server.database_url, workers=0)
    restarted.start()
    try:
        trial = restarted.get(f"/v1/trials/{running['id']}")
        assert trial["state"] == "waiting"  # handed back for the next worker
        assert trial["attempt"] == 0  # without spending one of its retries
        assert trial["epochs_done"] == 0
    finally:
        assert restarted.stop() == 0


def _running_trial_after_one_epoch(server: ServeProcess, study_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for trial in server.get(f"/v1/studies/{study_id}/trials")["data"]:
            if trial["state"] == "running" and trial["epochs_done"] >= 1:
                detail: dict[str, Any] = server.get(f"/v1/trials/{trial['id']}")
                return detail
        time.sleep(0.1)
    raise AssertionError(f"no trial of study {study_id} got past its first epoch")


def _all_running_after_one_epoch(
    server: ServeProcess, study_id: int, *, count: int
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        trials = server.get(f"/v1/studies/{study_id}/trials")["data"]
        busy = [t for t in trials if t["state"] == "running" and t["epochs_done"] >= 1]
        if len(busy) >= count:
            return list(busy)
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} trials of study {study_id} got past an epoch")


def _wait_until_finished(server: ServeProcess, trial_id: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        trial: dict[str, Any] = server.get(f"/v1/trials/{trial_id}")
        if trial["state"] in ("complete", "pruned", "failed"):
            return trial
        time.sleep(0.2)
    raise AssertionError(f"trial {trial_id} still running:\n{server.log()}")


def _pid_of_worker(server: ServeProcess, name: str) -> int:
    workers = server.get("/readyz")["workers"]
    (pid,) = [w["pid"] for w in workers if w["name"] == name]
    assert pid in server.worker_pids, "the API names a process that is not a local worker"
    return int(pid)
