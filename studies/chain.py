"""Automatic follow-up rounds (issue 13): the seed's loop — search, read the curves, change
the recipe, search again — closed by the server.

A study whose spec asks for ``follow_up: {max_rounds: N}`` is round 1 of a chain. When a
round ends (every slot finished, not cancelled) its summary (``store.study_diagnosis``)
says what to change; ``advance`` either submits that follow-up spec as the next round
(``parent_id``, ``round + 1``, named ``<root-name>-r<round>``, the same priority and
``follow_up`` budget) or stops the loop, and writes why in the round's ``chain_reason``:

- no trial completed, so there is nothing to build on;
- the round did not improve the objective over its parent (the loop stops and says so);
- the best trial is healthy (so not undertrained either) and the learning rates next to it
  were tried within half a decade: nothing left to fix (a healthy best of a coarser grid,
  such as the seed's a decade apart, gets one refining round first);
- ``max_rounds`` follow-ups have run;
- the summary has no follow-up spec, or the one it has does not fit this server
  (``check_submission``: its limits, its data root): the reason is the chain's last word,
  never a 500 or a round silently dropped.

A range test (``search.sampler: range_test``) can be round 1: its follow-up is a grid
around the learning rate it suggests (``followup.around_suggestion``).

Exactly once. The worker that finishes a study's last slot calls ``advance`` at once, and
the server's reconciler calls ``advance_all`` periodically, so a crash between the two is
made good; both may race, with each other and with a cancellation. The decision is claimed
by one conditional ``UPDATE`` of the round's row (``follow_up_id IS NULL AND chain_reason
IS NULL AND NOT cancel_requested``) whose row count says who won, as the queue's claims do.
A next round's rows are inserted in the same transaction as that ``UPDATE``
(``submit_study(within=…)``), so the link and the child commit together or not at all.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from studies import followup, store
from studies.db import ChainState, Database, StudyRow, TrialRow, TrialState
from studies.diagnosis import Label, StudySummary
from studies.errors import NotFoundError, QueueFullError, SpecError, StudiesError
from studies.queue._sql import rowcount
from studies.spec import (
    Objective,
    SpecLimits,
    StudySpec,
    check_submission,
    stored_follow_up_rounds,
)

__all__ = [
    "ChainServer",
    "Decision",
    "Outcome",
    "advance",
    "advance_after_slot",
    "advance_all",
    "decide",
]

log = logging.getLogger(__name__)

# A healthy best trial ends the loop only once the learning rates next to it were tried
# within half a decade: on the seed's grid (a decade apart) the best LR is known only to a
# factor of 10, and one refining round (the summary's move for a healthy best, five LRs over
# the decade around it) is what the seed's step 1 at a finer grain buys.
FINE_LR_RATIO = math.sqrt(10)

# A range test's sampler, by value: the range test (engineer C's sampler) is round 1 of a
# chain when it ends a spec with follow_up.
RANGE_TEST = "range_test"


@dataclass(frozen=True)
class ChainServer:
    """What a next round must fit: the server's limits and data root, where its artifacts
    go, and its queue limit (a full queue delays a round, it never drops one)."""

    limits: SpecLimits
    data_root: Path
    artifacts_dir: Path
    max_unfinished: int | None = None


@dataclass(frozen=True)
class Decision:
    """What to do at the end of a round: submit *next_spec*, or stop (None), and why."""

    next_spec: StudySpec | None
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What ``advance`` did for one round: the next round's study id, or None (stopped)."""

    study_id: int
    follow_up_id: int | None
    reason: str


class _AlreadyDecided(StudiesError):
    """Another caller decided this round first (or it was cancelled meanwhile)."""


def _undecided(study_id: int) -> Any:
    """The ``WHERE`` that claims a round's decision: nobody decided it, nobody cancelled it."""
    return (
        (StudyRow.id == study_id)
        & StudyRow.follow_up_id.is_(None)
        & StudyRow.chain_reason.is_(None)
        & StudyRow.cancel_requested.is_(False)
    )


def _lr_resolution(summary: StudySummary) -> float:
    """How far (as a ratio) the nearest other learning rate tried is from the best one;
    infinity when no other was tried."""
    best = summary.best_lr
    others = [group.lr for group in summary.labels_by_lr if best is not None and group.lr != best]
    if best is None or not others:
        return math.inf
    return min(max(lr / best, best / lr) for lr in others)


def _fmt(objective: Objective, value: float) -> str:
    return f"{objective.value} {value:.4g}"


def decide(
    *,
    spec: StudySpec,
    round_number: int,
    root_name: str,
    summary: StudySummary,
    parent_best: float | None,
    suggestion: float | None,
    server: ChainServer,
) -> Decision:
    """The end of round *round_number* of a chain: the next round's spec, or why the loop stops.

    *summary*: the round's study summary (its follow-up planned within the server's limits);
    *parent_best*: the previous round's best objective value (None: round 1, or unknown);
    *suggestion*: a range test's suggested learning rate (None: not a range test, or none).
    """
    objective = spec.objective
    budget = spec.follow_up.max_rounds
    if spec.search.sampler == RANGE_TEST:
        if suggestion is None:
            return Decision(None, "The range test suggested no learning rate: the loop stops.")
        plan = followup.around_suggestion(spec, suggestion, server.limits)
    else:
        if summary.best_value is None:
            return Decision(
                None, f"No trial of round {round_number} completed: nothing to build on."
            )
        best = _fmt(objective, summary.best_value)
        if parent_best is not None:
            better = (
                summary.best_value > parent_best
                if objective.direction == "maximize"
                else summary.best_value < parent_best
            )
            if not better:
                return Decision(
                    None,
                    f"Round {round_number} did not improve on round {round_number - 1} "
                    f"({best}, was {_fmt(objective, parent_best)}): the loop stops; the "
                    "previous round holds the best trial.",
                )
        if summary.best_label is Label.HEALTHY and _lr_resolution(summary) <= FINE_LR_RATIO:
            return Decision(
                None,
                f"The best trial (lr {summary.best_lr:g}, {best}) is healthy, neither over- "
                "nor underfitting nor undertrained, and the learning rates around it were "
                "tried finely: the loop is done.",
            )
        plan = followup.Followup(summary.followup_spec, summary.next_step)
    if round_number > budget:
        return Decision(
            None,
            f"follow_up.max_rounds = {budget} follow-up rounds have run: the loop stops "
            f"(the summary's next step: {plan.next_step})",
        )
    if plan.spec is None:
        return Decision(None, f"No follow-up round fits: {plan.next_step}")
    name = followup.round_name(root_name, round_number + 1)
    try:
        next_spec = StudySpec.model_validate({**plan.spec.model_dump(), "name": name})
        check_submission(next_spec, limits=server.limits, data_root=server.data_root)
    except ValidationError as exc:
        return Decision(None, f"The follow-up spec is not valid, so the loop stops: {exc}")
    except SpecError as exc:
        return Decision(
            None, f"The follow-up spec does not fit this server, so the loop stops: {exc}"
        )
    return Decision(next_spec, f"Round {round_number + 1} submitted: {plan.next_step}")


def _ended(db: Database, study_id: int) -> bool:
    """Every slot of the study finished (none waiting or running)."""
    with db.session() as session:
        open_slots, total = session.execute(
            select(
                func.count(TrialRow.id).filter(
                    TrialRow.state.in_((TrialState.WAITING, TrialState.RUNNING))
                ),
                func.count(TrialRow.id),
            ).where(TrialRow.study_id == study_id)
        ).one()
    return total > 0 and open_slots == 0


def _parent_best(db: Database, parent_id: int | None) -> float | None:
    if parent_id is None:
        return None
    try:
        parent = store.get_study(db, parent_id)
    except NotFoundError:
        return None  # deleted: nothing to compare with
    if parent.spec.get("search", {}).get("sampler") == RANGE_TEST:
        return None  # a range test's run is a probe, not a result to beat
    return None if parent.best_trial is None else parent.best_trial.value


def _suggestion(db: Database, study_id: int) -> float | None:
    """The learning rate a range test's trial suggested (``TrialRow.lr_range``), if any."""
    with db.session() as session:
        ranges = session.scalars(
            select(TrialRow.lr_range).where(TrialRow.study_id == study_id)
        ).all()
    for lr_range in ranges:
        value = (lr_range or {}).get("suggestion")
        if isinstance(value, int | float) and value > 0:
            return float(value)
    return None


def _stop(db: Database, study_id: int, reason: str) -> bool:
    """Write why the loop stops at this round, if nobody decided it first."""
    with db.session() as session:
        return (
            rowcount(
                session.execute(
                    update(StudyRow)
                    .where(_undecided(study_id))
                    .values(chain_reason=reason, chain_state=ChainState.DECIDED)
                )
            )
            == 1
        )


def _submit(
    db: Database, row: StudyRow, spec: StudySpec, reason: str, server: ChainServer
) -> int | None:
    """Queue *spec* as the round after *row*, linked in the inserting transaction; the new
    study's id, or None when another caller decided *row* first."""

    def link(session: Session, child: StudyRow) -> None:
        child.parent_id = row.id
        child.round = row.round + 1
        claimed = session.execute(
            update(StudyRow)
            .where(_undecided(row.id))
            .values(
                follow_up_id=child.id, chain_reason=reason, chain_state=ChainState.DECIDED
            )
        )
        if rowcount(claimed) != 1:
            raise _AlreadyDecided(f"study {row.id}'s next round was already decided")

    try:
        child = store.submit_study(
            db,
            spec,
            artifacts_dir=server.artifacts_dir,
            max_unfinished=server.max_unfinished,
            within=link,
        )
    except _AlreadyDecided:
        return None
    return child.id


def advance(db: Database, study_id: int, *, server: ChainServer) -> Outcome | None:
    """Take the next round of *study_id*'s chain, or stop it, if the study has ended and
    nobody has decided yet. None: nothing to do (follow-up off, still running, cancelled,
    decided by someone else, or the queue full: a later call retries)."""
    try:
        row = store.study_row(db, study_id)
    except NotFoundError:
        return None
    if (
        stored_follow_up_rounds(row.spec) == 0
        or row.cancel_requested
        or row.follow_up_id is not None
        or row.chain_reason is not None
        or not _ended(db, study_id)
    ):
        return None
    try:
        spec = StudySpec.model_validate(row.spec)
    except ValidationError as exc:
        decision = Decision(None, f"The stored spec is no longer valid: {exc}")
    else:
        decision = decide(
            spec=spec,
            round_number=row.round,
            root_name=followup.chain_root_name(row.name, row.round),
            summary=store.study_diagnosis(db, study_id, limits=server.limits),
            parent_best=_parent_best(db, row.parent_id),
            suggestion=_suggestion(db, study_id) if spec.search.sampler == RANGE_TEST else None,
            server=server,
        )
    if decision.next_spec is None:
        return (
            Outcome(study_id, None, decision.reason)
            if _stop(db, study_id, decision.reason)
            else None
        )
    try:
        child_id = _submit(db, row, decision.next_spec, decision.reason, server)
    except QueueFullError as exc:
        log.warning("study %d: next round waits for room in the queue: %s", study_id, exc)
        return None
    if child_id is None:
        return None
    log.info("study %d: round %d submitted as study %d", study_id, row.round + 1, child_id)
    return Outcome(study_id, child_id, decision.reason)


def advance_all(db: Database, *, server: ChainServer) -> list[Outcome]:
    """``advance`` every round that can still advance: follow-up on, not decided, not
    cancelled, every slot finished (the reconciler's sweep: a worker that died between
    finishing a study's last slot and deciding its next round is made good). The indexed
    ``chain_state`` keeps studies without follow-up, and decided ones, out of the read."""
    open_slots = select(TrialRow.id).where(
        TrialRow.study_id == StudyRow.id,
        TrialRow.state.in_((TrialState.WAITING, TrialState.RUNNING)),
    )
    with db.session() as session:
        candidates = session.scalars(
            select(StudyRow.id).where(
                StudyRow.chain_state == ChainState.OPEN,
                StudyRow.cancel_requested.is_(False),
                ~open_slots.exists(),
            )
        ).all()
    outcomes = []
    for study_id in candidates:
        outcome = advance(db, study_id, server=server)
        if outcome is not None:
            outcomes.append(outcome)
    return outcomes


def advance_after_slot(db: Database, study_id: int, *, server: ChainServer) -> None:
    """What a worker calls once it has finished one of *study_id*'s slots: if that was the
    last, take the chain's next round now. Never raises: a failure here (the database
    away, say) is logged and left to the reconciler's ``advance_all``, so the worker goes on."""
    try:
        outcome = advance(db, study_id, server=server)
    except Exception:
        log.exception("study %d: deciding its next round failed; the reconciler retries", study_id)
        return
    if outcome is not None:
        log.info("study %d: %s", study_id, outcome.reason)
