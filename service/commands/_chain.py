"""What `submit --follow`, `status` and `demo` share about follow-up chains: the chain
table, and following a chain round after round until the server stops it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from service.client import SweepdocClient
from service.render import FINISHED_STUDY, fmt_label, follow, print_study_report
from studies.db import StudyStatus
from studies.schemas import Chain, StudyPublic
from studies.spec import stored_follow_up_rounds

# How often to ask whether the server has decided a finished round's next one (the worker
# decides at once; the reconciler within half a staleness period).
_DECISION_POLL_S = 1.0


def in_a_chain(study: StudyPublic) -> bool:
    """Whether the study is, or may become, part of a chain of more than one round."""
    return (
        stored_follow_up_rounds(study.spec) > 0
        or study.parent_id is not None
        or study.follow_up_id is not None
    )


def chain_table(chain: Chain) -> Group:
    """Every round: its study, status, best trial's label and objective, and in short why
    the loop went on or stopped there; each round's reason in full below the table (a long
    reason folded into a column made the table tens of lines tall on 80 columns)."""
    table = Table(title="Follow-up rounds")
    table.add_column("round", justify="right")
    table.add_column("study", justify="right")
    table.add_column("name", overflow="fold")
    table.add_column("status")
    table.add_column("best", justify="right")
    table.add_column("label")
    table.add_column("then", overflow="fold")
    reasons: list[Text] = []
    for r in chain.rounds:
        reason = r.chain_reason or ("deciding…" if r.status in FINISHED_STUDY else "-")
        table.add_row(
            str(r.round),
            str(r.id),
            r.name,
            r.status.value,
            "-" if r.best_value is None else f"{r.objective.value} {r.best_value:.4f}",
            fmt_label(r.best_label),
            reason.partition(": ")[0],
        )
        if r.chain_reason:
            reasons.append(Text(f"round {r.round}: {r.chain_reason}"))
    return Group(table, *reasons)


def wait_for_decision(
    client: SweepdocClient,
    study: StudyPublic,
    *,
    on_poll: Callable[[], None] | None = None,
) -> StudyPublic:
    """The finished *study* once the server has decided its next round (or stopped the loop,
    or it was cancelled)."""
    while study.chain_reason is None and study.status is not StudyStatus.CANCELLED:
        if on_poll is not None:
            on_poll()
        time.sleep(_DECISION_POLL_S)
        study = client.study(study.id)
    return study


def follow_chain(
    client: SweepdocClient,
    study: StudyPublic,
    console: Console,
    *,
    on_poll: Callable[[], None] | None = None,
) -> StudyPublic:
    """Follow *study* and every round the server submits after it, each with its live
    progress and report, then print the chain; return the last round."""
    while True:
        study = follow(client, study.id, console, on_poll=on_poll)
        print_study_report(client, study, console)
        if not in_a_chain(study):
            return study
        study = wait_for_decision(client, study, on_poll=on_poll)
        if study.chain_reason:
            console.print(f"[bold]Round {study.round}:[/] {study.chain_reason}", highlight=False)
        if study.follow_up_id is None:
            break
        study = client.study(study.follow_up_id)
        console.rule(f"round {study.round}: study {study.id} {study.name}")
    console.print(chain_table(client.study_chain(study.id)))
    return study


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):  # an empty section has no settings to show
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat |= _flat(item, f"{prefix}{key}.")
        return flat
    return {prefix.removesuffix("."): value}


def spec_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """What a follow-up round changed, one ``path: old → new`` line per setting (the name,
    which always changes, left out)."""
    old, new = _flat(before), _flat(after)
    return [
        f"{path}: {old.get(path, '-')} → {new.get(path, '-')}"
        for path in sorted(old.keys() | new.keys())
        if path != "name" and old.get(path) != new.get(path)
    ]


def epochs_spent(client: SweepdocClient, study_id: int) -> int:
    """Epochs the study's trials trained, all of them together."""
    return sum(trial.epochs_done for trial in client.trials(study_id).data)
