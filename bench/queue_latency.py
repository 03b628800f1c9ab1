"""Queue latency: submit → trial claimed → first epoch started, with an idle worker waiting.

Starts a real `sweepdoc serve` (a SQLite file in a temporary SWEEPDOC_HOME, one local CPU
worker, loopback only) with the worker settings users get (service/settings.py defaults, not
the test suite's fast polling), then POSTs one-trial studies (digits subset, a small CNN, one
epoch; tests/service/factory.tiny_spec) one at a time: each is submitted only after the
previous study finished, so the worker is idle between claim rounds (it reads a one-row
queue marker every 0.1 s and claims as soon as that changes, else at the next poll:
studies.worker). A random pause (uniform over one poll interval) before each submission
spreads the submissions over the worker's poll phase. The first submission of each server
is reported apart (a worker warms the trainer up before it first polls, so it should cost
no more than the others; the row shows whether it does). The whole run is repeated with a
shorter poll interval, so the table shows how much is the poll wait (with the marker's
wake-up, little of either).

Timestamps, all from the same machine's clock (the client's time.time() and the server's
UTC timestamps are comparable): the client's clock just before the POST; the study row's
created_at (the moment the slot became claimable); the trial's claimed_at (the worker's
conditional UPDATE); the Optuna trial's datetime_start (the worker turned the enqueued
Optuna trial RUNNING); and the first epoch's start, derived exactly from what the database
holds: the epoch row's created_at (written by the per-epoch callback right after the epoch)
minus the epoch's own wall time (EpochRecord.seconds, training + evaluation). That start is
late by the callback's bookkeeping before the INSERT (well under a millisecond to a few ms).

Pieces: POST (submit → study row), poll wait + claim (study row → claimed_at: the worker's
sleep until its next poll plus the candidate SELECT), Optuna start (claimed_at → Optuna
trial RUNNING: loading the claim and the Optuna study), set-up (→ first epoch start: the
Optuna attributes, the attempt row, dataset load and preprocessing, model build).

    .venv/bin/python bench/queue_latency.py [--submissions 50] [--poll-intervals default,0.1]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the serve harness lives under tests/

from sqlalchemy import select, text  # noqa: E402

from bench._common import percentiles, shipped_worker_settings, write_result  # noqa: E402
from studies.db import Database, EpochRow, StudyRow, TrialRow  # noqa: E402
from tests.service.factory import tiny_spec  # noqa: E402
from tests.service.serve_process import ServeProcess, serving  # noqa: E402

# Each configuration's "latency_s" in the JSON, with the table's column headings.
PHASES = {
    "submit_to_claimed": "submit→claimed",
    "submit_to_first_epoch": "submit→epoch 1",
    "post": "POST",
    "poll_wait_and_claim": "poll wait+claim",
    "optuna_start": "Optuna start",
    "setup": "set-up",
}


@dataclass(frozen=True)
class Submission:
    """One submission's timestamps (POSIX seconds, one clock) and its pieces."""

    submitted: float  # client, just before the POST
    created: float  # study row created_at: the slot is claimable
    claimed: float  # trial claimed_at
    optuna_started: float  # Optuna trial datetime_start (RUNNING)
    first_epoch_started: float  # epoch 1 row created_at minus its wall time

    def phases(self) -> dict[str, float]:
        return {
            "submit_to_claimed": self.claimed - self.submitted,
            "submit_to_first_epoch": self.first_epoch_started - self.submitted,
            "post": self.created - self.submitted,
            "poll_wait_and_claim": self.claimed - self.created,
            "optuna_start": self.optuna_started - self.claimed,
            "setup": self.first_epoch_started - self.optuna_started,
        }


def _posix(moment: datetime) -> float:
    # Optuna stores naive local time (datetime.now()); astimezone() reads a naive value as
    # local time, and an aware one (sweepdoc's UTC columns) as what it is.
    return moment.astimezone(UTC).timestamp()


def timestamps(db: Database, study_id: int, submitted: float) -> Submission:
    """Read one finished one-trial study's timestamps from the database."""
    with db.session() as session:
        created = session.get_one(StudyRow, study_id).created_at
        trial = session.scalars(select(TrialRow).where(TrialRow.study_id == study_id)).one()
        first = session.scalars(
            select(EpochRow).where(
                EpochRow.trial_id == trial.id, EpochRow.attempt == trial.attempt,
                EpochRow.epoch == 1,
            )
        ).one()
        optuna_start = session.execute(
            text("SELECT datetime_start FROM trials WHERE trial_id = :id"),
            {"id": trial.optuna_trial_id},
        ).scalar_one()
    assert trial.claimed_at is not None, f"trial {trial.id} was never claimed"
    if isinstance(optuna_start, str):  # SQLite hands raw text back to a text() query
        optuna_start = datetime.fromisoformat(optuna_start)
    return Submission(
        submitted=submitted,
        created=_posix(created),
        claimed=_posix(trial.claimed_at),
        optuna_started=_posix(optuna_start),
        first_epoch_started=_posix(first.created_at) - float(first.record["seconds"]),
    )


def submit_and_wait(server: ServeProcess, db: Database, name: str, pause_s: float) -> Submission:
    """Pause, POST a one-trial study, wait until it finished; its timestamps."""
    time.sleep(pause_s)
    submitted = time.time()
    response = server.http.post("/v1/studies", json=tiny_spec(name, grid=(0.05,), epochs=1))
    assert response.status_code == 201, response.text
    study_id = response.json()["id"]
    study = server.wait_for_study(study_id, timeout_s=300)
    assert study["status"] == "completed", (study, server.log())
    return timestamps(db, study_id, submitted)


def run_configuration(
    home: Path, poll_interval_s: float, submissions: int, rng: random.Random
) -> dict[str, Any]:
    """A fresh server with one worker polling every *poll_interval_s*: one warm-up
    submission, then *submissions* measured ones."""
    database_url = f"sqlite:///{home / 'db.sqlite'}"
    server = ServeProcess(
        home, database_url=database_url, workers=1, fast_workers=False,
        env_overrides={"SWEEPDOC_WORKER_POLL_INTERVAL_S": str(poll_interval_s)},
    )
    db = Database(database_url)
    try:
        with serving(server, workers=1):
            server.wait_for_workers(1)
            cold = submit_and_wait(server, db, "warm-up", rng.uniform(0, poll_interval_s))
            measured = []
            for index in range(submissions):
                pause = rng.uniform(0, poll_interval_s)
                measured.append(submit_and_wait(server, db, f"latency-{index}", pause))
                print(f"  poll {poll_interval_s:g} s #{index + 1}: "
                      f"{measured[-1].phases()['submit_to_first_epoch']:.3f} s", flush=True)
            exit_code = server.stop()
    finally:
        db.dispose()
    return {
        "poll_interval_s": poll_interval_s,
        "server_exit_code": exit_code,
        "warm_up_s": {k: round(v, 4) for k, v in cold.phases().items()},
        "latency_s": {
            phase: percentiles([s.phases()[phase] for s in measured], digits=4)
            for phase in PHASES
        },
        "submissions": [asdict(s) for s in measured],
    }


def print_table(rows: list[dict[str, Any]], default_poll_s: float) -> None:
    print("\nseconds, p50 / p99 / max over the measured submissions (warm-up excluded)")
    print(f"{'poll interval':<16}" + "".join(f"{h:>22}" for h in PHASES.values()))
    for row in rows:
        poll = row["poll_interval_s"]
        label = f"{poll:g} s" + (" (default)" if poll == default_poll_s else "")
        cells = "".join(
            f"{'{p50:.3f}/{p99:.3f}/{max:.3f}'.format(**row['latency_s'][p]):>22}"
            for p in PHASES
        )
        print(f"{label:<16}{cells}")
    print("first submission to a fresh server, submit → first epoch: "
          + ", ".join(f"{r['warm_up_s']['submit_to_first_epoch']:.2f} s" for r in rows))


def main() -> None:
    default_poll_s = shipped_worker_settings()["worker_poll_interval_s"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=50, help="measured, per interval")
    parser.add_argument("--poll-intervals", default="default,0.1",
                        help="comma-separated worker poll intervals in seconds; "
                        f"'default' is the shipped one ({default_poll_s:g} s)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the pauses before submits")
    parser.add_argument("--out", type=Path, default=None, help="default: bench/results/")
    args = parser.parse_args()
    intervals = [default_poll_s if v.strip() == "default" else float(v)
                 for v in args.poll_intervals.split(",")]

    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for poll in intervals:
            print(f"poll interval {poll:g} s: {args.submissions} submissions", flush=True)
            rows.append(run_configuration(Path(tmp) / f"poll-{poll:g}", poll,
                                          args.submissions, rng))
    write_result("queue_latency", {
        "database": "sqlite",
        "workers": 1,
        "device": "cpu",
        "default_poll_interval_s": default_poll_s,
        "worker_settings": shipped_worker_settings(),
        "study": tiny_spec("latency-{n}", grid=(0.05,), epochs=1),
        "clock": "one machine: client time.time() and the server's UTC timestamps compared",
        "configurations": rows,
    }, out=args.out)
    print_table(rows, default_poll_s)


if __name__ == "__main__":
    main()
