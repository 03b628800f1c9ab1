"""`sweepdoc demo` as a user runs it: the real command, its server, its worker, the default grid.

Slow (the whole default grid trains on CPU), so it runs in CI rather than in `-m "not slow"`.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from studies.db import Database
from studies.spec import default_grid_spec_path, load_spec_file
from studies.store import list_studies, list_trials
from tests.service.serve_process import REPO, pid_alive


def demo_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEPDOC_")}
    env["SWEEPDOC_HOME"] = str(home)
    env["COLUMNS"] = "120"
    return env


def processes_using(home: Path) -> list[int]:
    """Live processes whose environment points at *home* (the demo's server and workers)."""
    marker = f"SWEEPDOC_HOME={home}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and pid_alive(int(proc.name)):
            found.append(int(proc.name))
    return found


@pytest.mark.slow
def test_demo_prints_each_learning_rate_with_its_label_and_evidence(tmp_path: Path) -> None:
    home = tmp_path / "home"

    run = subprocess.run(
        [sys.executable, "-m", "service", "demo"],
        cwd=REPO,
        env=demo_env(home),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )

    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "Traceback" not in out + run.stderr
    assert not processes_using(home), "the demo left processes behind"
    # What the demo printed is what the study's records say, trial by trial.
    database = Database(f"sqlite:///{home / 'demo.db'}")
    try:
        # The grid is round 1; the round the server submitted after it is checked below.
        (study,) = [s for s in list_studies(database).data if s.round == 1]
        trials = list_trials(database, study.id).data
    finally:
        database.dispose()
    grid = load_spec_file(default_grid_spec_path()).search.lr_grid()
    assert sorted(t.params["lr"] for t in trials) == sorted(grid)
    for trial in trials:
        assert trial.label is not None
        lr = f"{trial.params['lr']:.0e}"
        evidence = re.search(rf"lr {lr} → {trial.label}: (.+)", out)
        assert evidence, f"no evidence line for lr {lr} ({trial.label}) in:\n{out}"
        assert trial.label in evidence.group(1).lower()
    assert "Next step:" in out
    assert "What it bought:" in out and "round 1 (study" in out  # the automatic round
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/dashboard/studies/\d+", out)


@pytest.mark.slow
def test_ctrl_c_stops_the_demo_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with subprocess.Popen(
        [sys.executable, "-m", "service", "demo"],
        cwd=REPO,
        env=demo_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as demo:
        assert demo.stdout is not None
        # Interrupt once training is under way (a trial was seen running).
        deadline = time.monotonic() + 300
        seen = []
        for line in demo.stdout:
            seen.append(line)
            if "running epoch" in line or time.monotonic() > deadline:
                break
        assert "running epoch" in seen[-1], "".join(seen)
        demo.send_signal(signal.SIGINT)
        rest = demo.stdout.read()
        code = demo.wait(timeout=120)

    assert code == 130, rest
    assert "interrupted" in rest
    assert "Traceback" not in rest
    assert not processes_using(home), "the demo left processes behind"
