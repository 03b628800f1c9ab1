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
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping, Sequence

import optuna
from optuna.pruners import BasePruner, PercentilePruner
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

# The reference trials of the trial with this Optuna number (the pack's members before it
# that are still training), as built by ``reference_trial``.
EarlierMembers = Callable[[int], Sequence[FrozenTrial]]


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


def pack_aware(pruner: BasePruner, earlier: EarlierMembers) -> BasePruner:
    """*pruner*, judging pack members also against the members before them; pruners that
    already see running trials (or prune nothing) come back as they are."""
    if isinstance(pruner, PercentilePruner):
        return PackPruner(pruner, earlier)
    return pruner


class PackPruner(BasePruner):
    """A percentile-family pruner that also counts the pack's earlier members as finished.

    The study's finished trials are read once per epoch for the whole pack, not once per
    member: reading them makes Optuna's trial cache re-read every unfinished trial, the
    pack's running members included, which cost K² trial reads an epoch. A trial another
    worker finishes meanwhile counts from the next epoch on."""

    def __init__(self, pruner: PercentilePruner, earlier: EarlierMembers) -> None:
        self.pruner = pruner
        self.earlier = earlier
        self._finished: tuple[int | None, list[FrozenTrial]] | None = None

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        step = trial.last_step
        if self._finished is None or self._finished[0] != step:
            self._finished = (step, study.get_trials(deepcopy=False, states=_COMPLETE))
        references = list(self.earlier(trial.number))
        view = _WithReferences(study, finished=self._finished[1], references=references)
        return self.pruner.prune(view, trial)


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


__all__ = ["EarlierMembers", "PackPruner", "pack_aware", "reference_trial"]
