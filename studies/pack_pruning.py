"""Pruning a pack's members as if they had run one after the other (issue 15).

Optuna's median and percentile pruners judge a trial, at each step, against the study's
COMPLETE trials at that step. A pack's members train side by side and finish together, so
judged that way none of them ever meets another: a packed study pruned nothing and trained
50-100 % more epochs than the same study run trial after trial (docs/benchmarks.md, 2b).

``PackPruner`` wraps the study's configured pruner and hands it, along with the study's
finished trials, the pack's members *before* the one judged (pack order is slot order: the
order in which one worker would have run the same slots alone), each as a COMPLETE trial
holding the values it reported up to this epoch, for as long as it is still training. Those
are the trials the member would have been judged against had the earlier members run first:
they count toward ``n_startup_trials`` and give the median at this epoch. Everything else
(the percentile, ``n_warmup_steps``, ``interval_steps``, ``n_min_trials``, the direction) is
the configured pruner's own code, untouched. The one difference from a run one after the
other: an earlier member that will be pruned at a later epoch counts until then (run first,
it would have ended PRUNED and never counted).

Only the percentile family (``MedianPruner`` is one) is wrapped. Hyperband's successive
halving already compares a trial with every trial that reached the same rung, running ones
included, so pack members meet there as they are.

A worker judges the trials it trains alone through the same wrapper, with no earlier
members: for both, the study's finished trials are read from Optuna again only when the
queue's count of COMPLETE slots moved (``complete_count``: ``studies.pack_run`` gives the
count read in the member's own epoch write, ``queue.record_epochs``), not at every epoch
(each read made Optuna's trial cache re-read every unfinished trial: ~4 ms an epoch for a
trial alone, ~8 ms for a pack of five on the digits).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass

import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

# The reference trials of the trial with this Optuna number (the pack's members before it
# that are still training), as built by ``reference_trial``.
EarlierMembers = Callable[[int], Sequence[FrozenTrial]]
# How many of the study's slots sweepdoc's queue finished COMPLETE. The queue finishes a
# slot before Optuna is told, so while this count stands still so do Optuna's COMPLETE
# trials, once it matches their number (a tell not yet landed: it does not match).
CompleteCount = Callable[[], int]


def reference_trial(reported: Mapping[int, float]) -> FrozenTrial | None:
    """A pack member as the pruner sees it: a COMPLETE trial holding the objective values it
    reported so far (epoch → value); None before it reported a finite one."""
    finite = {epoch: value for epoch, value in reported.items() if math.isfinite(value)}
    if not finite:
        return None
    return optuna.trial.create_trial(
        state=OptunaState.COMPLETE,
        value=finite[max(finite)],  # a COMPLETE trial needs one; the pruners never read it
        intermediate_values=finite,
    )


def pack_aware(
    pruner: BasePruner, earlier: EarlierMembers, complete_count: CompleteCount | None = None
) -> BasePruner:
    """*pruner*, judging pack members also against the members before them; pruners that
    already see running trials (or prune nothing) come back as they are."""
    if isinstance(pruner, PercentilePruner):
        return PackPruner(pruner, earlier, complete_count)
    return pruner


@dataclass(frozen=True)
class _Finished:
    """The study's COMPLETE trials as read at *step*, while the queue counted *count*
    (None: the two did not agree, so the read holds for this step only)."""

    step: int | None
    count: int | None
    trials: list[FrozenTrial]

    def holds(self, step: int | None, count: int | None) -> bool:
        if self.count is not None and count is not None:
            return self.count == count
        return self.step == step


class PackPruner(BasePruner):
    """A percentile-family pruner that also counts the pack's earlier members as finished.

    The study's finished trials are read at most once per epoch for the whole pack, not
    once per member: reading them makes Optuna's trial cache re-read every unfinished
    trial, the pack's running members included, which cost K² trial reads an epoch. With
    *complete_count* they are read again only when that count moved (a trial another
    worker finishes counts at once); without it, once per epoch (such a trial counts
    from the next epoch on)."""

    def __init__(
        self,
        pruner: PercentilePruner,
        earlier: EarlierMembers,
        complete_count: CompleteCount | None = None,
    ) -> None:
        self.pruner = pruner
        self.earlier = earlier
        self.complete_count = complete_count
        self._finished: _Finished | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        view = _WithReferences(
            study,
            finished=self._finished_trials(study, trial.last_step),
            references=list(self.earlier(trial.number)),
        )
        return self.pruner.prune(view, trial)

    def _finished_trials(self, study: optuna.Study, step: int | None) -> list[FrozenTrial]:
        count = self.complete_count() if self.complete_count is not None else None
        if self._finished is None or not self._finished.holds(step, count):
            trials = study.get_trials(deepcopy=False, states=_COMPLETE)
            agreed = count if count == len(trials) else None
            self._finished = _Finished(step=step, count=agreed, trials=trials)
        return self._finished.trials


_COMPLETE = (OptunaState.COMPLETE,)


class _WithReferences(optuna.Study):
    """*study* whose COMPLETE trials include *references*: what the pruner reads.
    *finished* is the study's own COMPLETE trials, as read at this epoch.

    Optuna's Hyperband hands its bracket pruners a Study subclass the same way. This one
    shares the study's state instead of calling ``Study.__init__``, which would look the
    study up in the storage again at every epoch of every member."""

    def __init__(
        self, study: optuna.Study, *, finished: list[FrozenTrial], references: list[FrozenTrial]
    ) -> None:
        self.__dict__.update(study.__dict__)
        self._finished = finished
        self._references = references

    def get_trials(
        self, deepcopy: bool = True, states: Container[OptunaState] | None = None
    ) -> list[FrozenTrial]:
        if states == _COMPLETE:  # what the percentile pruners ask for
            return [*self._finished, *self._references]
        trials = super().get_trials(deepcopy=deepcopy, states=states)
        if states is None or OptunaState.COMPLETE in states:
            return [*trials, *self._references]
        return trials


__all__ = ["CompleteCount", "EarlierMembers", "PackPruner", "pack_aware", "reference_trial"]
