"""What the CLI prints: live progress of a study, and its results as tables.

In a terminal, `follow` draws one progress bar for the study and one per trial (epochs);
when the output is a pipe or a file it prints one line per change instead, so logs stay
readable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from service.client import ApiError, ServerUnreachable, SweepdocClient
from service.styles import LABEL_STYLE
from studies.db import StudyStatus, TrialState
from studies.diagnosis import Diagnosis
from studies.schemas import StudyPublic, TrialPublic
from studies.spec import TrainSpec

if TYPE_CHECKING:
    from studies.diagnosis import StudySummary

FINISHED_STUDY = frozenset({StudyStatus.COMPLETED, StudyStatus.FAILED, StudyStatus.CANCELLED})
STATE_STYLE = {
    TrialState.WAITING: "dim",
    TrialState.RUNNING: "blue",
    TrialState.COMPLETE: "green",
    TrialState.PRUNED: "yellow",
    TrialState.FAILED: "red",
}
# How long `follow` keeps polling through a server that does not answer (a restart, say).
_OUTAGE_TOLERANCE_S = 120.0


def spec_epochs(study: StudyPublic) -> int:
    """The epochs each trial of *study* trains for (the spec's default when not given)."""
    train = study.spec.get("train") or {}
    return int(train.get("epochs", TrainSpec.model_fields["epochs"].default))


def fmt_lr(lr: float | None) -> str:
    """1e-02 rather than 0.01; 3.16e-03 keeps its digits."""
    if lr is None:
        return "-"
    mantissa, exponent = f"{lr:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"


def fmt_acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def fmt_label(label: str | None) -> str:
    if label is None:
        return "-"
    return f"[{LABEL_STYLE.get(label, 'white')}]{label}[/]"


def fmt_state(state: TrialState) -> str:
    return f"[{STATE_STYLE.get(state, 'white')}]{state.value}[/]"


def trial_status_text(trial: TrialPublic, epochs: int) -> str:
    if trial.state is TrialState.RUNNING:
        return f"running epoch {min(trial.epochs_done + 1, epochs)}/{epochs}"
    if trial.label is not None:
        return f"{trial.state.value}: {trial.label}"
    return trial.state.value


def _poll(
    client: SweepdocClient, study_id: int, since: float | None
) -> tuple[StudyPublic | None, list[TrialPublic]] | None:
    """The trials, with the study once they have all finished (one request per poll while
    the study runs); None during a tolerated outage of the server."""
    try:
        trials = client.trials(study_id).data
        study = client.study(study_id) if all(t.state.finished for t in trials) else None
    except ServerUnreachable:
        if since is not None and time.monotonic() - since > _OUTAGE_TOLERANCE_S:
            raise
        return None
    except ApiError as exc:
        if exc.status_code != 503:
            raise
        return None
    return study, trials


def _running_status(trials: Sequence[TrialPublic]) -> str:
    return "running" if any(t.state is not TrialState.WAITING for t in trials) else "queued"


def follow(
    client: SweepdocClient,
    study_id: int,
    console: Console,
    *,
    poll_s: float = 1.0,
    on_poll: Callable[[], None] | None = None,
) -> StudyPublic:
    """Show the study's progress until it is completed, failed or cancelled; return it.

    *on_poll* runs before every poll; an exception it raises ends the follow.
    """
    first = client.study(study_id)
    epochs = spec_epochs(first)
    view: _ProgressView = (
        _Bars(console, first, epochs) if console.is_terminal else _Lines(console, first, epochs)
    )
    outage_since: float | None = None
    try:
        while True:
            if on_poll is not None:
                on_poll()
            polled = _poll(client, study_id, outage_since)
            if polled is None:
                outage_since = outage_since or time.monotonic()
                view.outage()
            else:
                outage_since = None
                study, trials = polled
                view.show(study, trials)
                if study is not None and study.status in FINISHED_STUDY:
                    return study
            time.sleep(poll_s)
    finally:
        view.close()


class _ProgressView(Protocol):
    """How `follow` shows each poll: bars in a terminal, lines in a pipe or a file."""

    def show(self, study: StudyPublic | None, trials: Sequence[TrialPublic]) -> None:
        """One poll's trials; *study* is given once every trial has finished."""
        ...

    def outage(self) -> None:
        """The server did not answer this poll (tolerated for a while)."""
        ...

    def close(self) -> None: ...


class _Bars:
    """One progress bar for the study (trials finished) and one per trial (epochs done)."""

    def __init__(self, console: Console, first: StudyPublic, epochs: int) -> None:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[status]}"),
            TimeElapsedColumn(),
        )
        self.progress = Progress(*columns, console=console, refresh_per_second=4)
        self.progress.start()
        self.epochs = epochs
        self.overall = self.progress.add_task(
            f"study {first.id} [bold]{first.name}[/]",
            total=first.trial_count,
            status=first.status.value,
        )
        self.bars: dict[int, TaskID] = {}

    def show(self, study: StudyPublic | None, trials: Sequence[TrialPublic]) -> None:
        progress = self.progress
        for trial in trials:
            # Random/tpe trials learn their learning rate when a worker starts them.
            description = f"  trial {trial.number:>3}  lr {fmt_lr(trial.params.get('lr'))}"
            if trial.id not in self.bars:
                # Not started: a waiting trial's clock starts when a worker takes it.
                self.bars[trial.id] = progress.add_task(
                    description, total=self.epochs, status="", start=False
                )
            bar = self.bars[trial.id]
            progress.update(
                bar,
                description=description,
                completed=trial.epochs_done,
                status=trial_status_text(trial, self.epochs),
            )
            task = next(t for t in progress.tasks if t.id == bar)
            if trial.state is not TrialState.WAITING and not task.started:
                progress.start_task(bar)
            if trial.state.finished and task.stop_time is None:
                progress.stop_task(bar)
        done = sum(1 for t in trials if t.state.finished)
        status = study.status.value if study is not None else _running_status(trials)
        progress.update(self.overall, completed=done, status=status)

    def outage(self) -> None:
        self.progress.update(self.overall, status="server not answering; retrying")

    def close(self) -> None:
        self.progress.stop()


class _Lines:
    """One line whenever the study's or a trial's status changes, for logs."""

    def __init__(self, console: Console, first: StudyPublic, epochs: int) -> None:
        self.console = console
        self.first = first
        self.epochs = epochs
        self.seen: dict[int, str] = {}
        self.last_status: str | None = None

    def show(self, study: StudyPublic | None, trials: Sequence[TrialPublic]) -> None:
        status = study.status.value if study is not None else _running_status(trials)
        if status != self.last_status:
            self.console.print(
                f"study {self.first.id} {self.first.name}: {status}", highlight=False
            )
            self.last_status = status
        for trial in trials:
            text = trial_status_text(trial, self.epochs)
            if self.seen.get(trial.id) != text:
                self.console.print(
                    f"  trial {trial.number} lr {fmt_lr(trial.params.get('lr'))}: {text}",
                    highlight=False,
                )
                self.seen[trial.id] = text

    def outage(self) -> None:
        """Nothing to print: the next line comes when the server answers again."""

    def close(self) -> None:
        """Nothing to release."""


def _by_lr(trials: Sequence[TrialPublic]) -> list[TrialPublic]:
    return sorted(trials, key=lambda t: (-(t.params.get("lr") or 0.0), t.number))


def results_table(trials: Sequence[TrialPublic]) -> Table:
    """lr → label → validation accuracy, one row per trial, largest learning rate first."""
    table = Table(title="Trials by learning rate")
    table.add_column("lr", justify="right")
    table.add_column("label")
    table.add_column("val acc", justify="right")
    table.add_column("best val acc", justify="right")
    table.add_column("state")
    table.add_column("epochs", justify="right")
    table.add_column("#", justify="right")
    for trial in _by_lr(trials):
        extra = ", ".join(f"{k}={v}" for k, v in trial.params.items() if k != "lr")
        table.add_row(
            fmt_lr(trial.params.get("lr")) + (f" ({extra})" if extra else ""),
            fmt_label(trial.label),
            fmt_acc(trial.final_val_acc),
            fmt_acc(trial.best_val_acc),
            fmt_state(trial.state),
            str(trial.epochs_done),
            str(trial.number),
        )
    return table


def print_evidence(
    trials: Sequence[TrialPublic], diagnoses: dict[int, Diagnosis | None], console: Console
) -> None:
    """Each diagnosed trial's evidence, in one sentence, under its learning rate and label."""
    console.print("[bold]Evidence[/]")
    for trial in _by_lr(trials):
        diagnosis = diagnoses.get(trial.id)
        if diagnosis is None:
            continue
        console.print(
            f"  lr {fmt_lr(trial.params.get('lr'))} → {fmt_label(trial.label)}: "
            f"{diagnosis.summary}",
            highlight=False,
        )


def study_line(study: StudyPublic) -> str:
    best = study.best_trial
    best_text = (
        f"best trial {best.number} (lr {fmt_lr(best.lr)}, {study.objective} {best.value:.4f})"
        if best is not None
        else "no finished trial yet"
    )
    counts = ", ".join(f"{state}: {n}" for state, n in study.counts.items() if n)
    return (
        f"study {study.id} [bold]{study.name}[/]  {study.status.value}  "
        f"{study.progress:.0%}  ({counts or 'no trials'})  {best_text}"
    )


def studies_table(studies: Sequence[StudyPublic]) -> Table:
    table = Table(title="Studies")
    table.add_column("id", justify="right")
    table.add_column("name")
    table.add_column("status")
    table.add_column("progress", justify="right")
    table.add_column("trials")
    table.add_column("best lr", justify="right")
    table.add_column("best value", justify="right")
    table.add_column("created")
    for study in studies:
        best = study.best_trial
        table.add_row(
            str(study.id),
            study.name,
            study.status.value,
            f"{study.progress:.0%}",
            ", ".join(f"{state} {n}" for state, n in study.counts.items() if n) or "-",
            fmt_lr(best.lr) if best else "-",
            f"{best.value:.4f}" if best else "-",
            study.created_at.astimezone().strftime("%Y-%m-%d %H:%M"),
        )
    return table


def print_study_report(client: SweepdocClient, study: StudyPublic, console: Console) -> None:
    """The trials table with each diagnosis, then the study's next step."""
    trials = client.trials(study.id).data
    diagnoses: dict[int, Diagnosis | None] = {}
    for trial in trials:
        if trial.state.finished:
            stored = client.trial(trial.id).diagnosis
            diagnoses[trial.id] = Diagnosis.model_validate(stored) if stored else None
    console.print(results_table(trials))
    if any(d is not None for d in diagnoses.values()):
        print_evidence(trials, diagnoses, console)
    if any(t.state.finished for t in trials):
        print_summary(client.study_diagnosis(study.id), console)


def print_summary(summary: StudySummary, console: Console) -> None:
    """The study's verdict: the usable learning-rate window and what to run next."""
    window = summary.lr_window
    if window.high is not None or window.low is not None:
        console.print(
            f"[bold]Usable learning rates:[/] highest that did not diverge "
            f"{fmt_lr(window.high)}, lowest that was not undertrained {fmt_lr(window.low)}",
            highlight=False,
        )
    console.print(f"[bold]Next step:[/] {summary.next_step}", highlight=False)
