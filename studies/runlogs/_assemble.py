"""From a log's raw series (per key: position, value) to the curves and their mapping.

Readers (CSV, TensorBoard) only parse; this module decides, once for every format, which key
fills which curve (`_names.choose`), how values become one per epoch, and what to say about it:

- positions are epoch numbers (a CSV's `epoch` column, a TensorBoard run's `epoch` tag) or
  steps. By epoch: an epoch's several values become one, the last for a per-epoch key
  (``*_epoch``, ``epoch_*``) and the mean for per-step values. By step: when every chosen
  key logged the same number of points, the k-th point of each is epoch k; otherwise the
  sparsest key's steps end the epochs and each denser key's points are grouped into the
  epoch whose end is the first at or after them (points past the last end belong to an
  unfinished epoch and are left out, with a note);
- every curve needs a value in every epoch: trailing epochs that some curve has not reached
  (a run stopped mid-epoch) are dropped with a note, a gap elsewhere is an error naming the
  key and the epoch;
- the result is validated as `Curves`, and a refusal (accuracy in percent, …) names the
  column or tag it came from, not the curve.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping

from pydantic import ValidationError

from studies.diagnosis import Curves
from studies.runlogs._model import (
    Aggregation,
    CurveMapping,
    IgnoredKey,
    IgnoreReason,
    MappedCurve,
    Points,
    RawLog,
    RunLog,
    RunLogError,
)
from studies.runlogs._names import Choice, aggregation_of, choose
from trainer._curves import METRIC_KEYS


def assemble(
    raw: RawLog, overrides: Mapping[str, str], *, num_classes: int | None = None
) -> RunLog:
    """The curves *raw* holds, chosen by name or by *overrides* ({curve: key})."""
    choices, ignored = choose([*raw.series, *raw.non_numeric], overrides)
    for choice in choices:
        if choice.key in raw.non_numeric:
            raise RunLogError(choice.key, f"not a number: {raw.non_numeric[choice.key]}")
    # The rest of the non-numeric keys: `choose` rejected them by name already (each once).
    rejected = {item.source: item for item in ignored}
    for key, where in raw.non_numeric.items():
        rejected[key] = IgnoredKey(
            source=key, reason=IgnoreReason.NOT_A_METRIC, detail=f"not numeric ({where})"
        )
    ignored = list(rejected.values())
    if not any(c.curve in METRIC_KEYS for c in choices):
        described = "; ".join(f"{i.source}: {i.detail}" for i in [*raw.ignored, *ignored][:12])
        raise RunLogError(
            "(log)",
            "no column or tag became one of the curves "
            f"{', '.join(METRIC_KEYS)}" + (f" ({described})" if described else "")
            + (f" ({raw.nothing_chosen_hint})" if raw.nothing_chosen_hint else ""),
        )
    notes = list(raw.notes)
    series = {c.key: raw.series[c.key] for c in choices}
    grouped = _by_epoch(series) if raw.by_epoch else _steps_to_epochs(series, notes)
    epochs = _complete_epochs(grouped, notes)
    curves: dict[str, object] = {}
    mapped: list[MappedCurve] = []
    for choice in choices:
        per_epoch = [grouped[choice.key][epoch] for epoch in epochs]
        rule = aggregation_of(choice.key)
        curves[choice.curve] = [_one(values, rule) for values in per_epoch]
        single = all(len(values) == 1 for values in per_epoch)
        mapped.append(_mapped(choice, Aggregation.ONE_PER_EPOCH if single else rule))
    if num_classes is not None:
        curves["num_classes"] = num_classes
    try:
        validated = Curves.model_validate(curves)
    except ValidationError as exc:
        raise _named(exc, choices) from None
    mapping = CurveMapping(
        format=raw.format,
        epochs=len(epochs),
        mapped=mapped,
        ignored=[*raw.ignored, *ignored],
        notes=notes,
    )
    return RunLog(curves=validated, mapping=mapping)


def _mapped(choice: Choice, aggregation: Aggregation) -> MappedCurve:
    return MappedCurve(
        curve=choice.curve, source=choice.key, aggregation=aggregation, chosen_by=choice.chosen_by
    )


def _epoch_number(position: float) -> int:
    return round(position)


def _by_epoch(series: Mapping[str, Points]) -> dict[str, dict[int, list[float]]]:
    grouped: dict[str, dict[int, list[float]]] = {}
    for key, points in series.items():
        per_epoch = grouped.setdefault(key, {})
        for position, value in points:
            per_epoch.setdefault(_epoch_number(position), []).append(value)
    return grouped


def _steps_to_epochs(
    series: Mapping[str, Points], notes: list[str]
) -> dict[str, dict[int, list[float]]]:
    counts = {key: len(points) for key, points in series.items()}
    if len(set(counts.values())) == 1:
        return {key: {k: [v] for k, (_, v) in enumerate(points)} for key, points in series.items()}
    sparsest = min(counts, key=lambda key: counts[key])
    ends = sorted({step for step, _ in series[sparsest]})
    grouped: dict[str, dict[int, list[float]]] = {}
    for key, points in series.items():
        per_epoch = grouped.setdefault(key, {})
        late = 0
        for step, value in points:
            epoch = bisect.bisect_left(ends, step)
            if epoch == len(ends):
                late += 1
                continue
            per_epoch.setdefault(epoch, []).append(value)
        if key != sparsest and counts[key] > len(ends):
            notes.append(
                f"{key}: {counts[key]} points grouped into the {len(ends)} epochs that end at "
                f"{sparsest}'s steps"
                + (f"; {late} after its last step ({ends[-1]:g}) left out" if late else "")
            )
    return grouped


def _complete_epochs(
    grouped: Mapping[str, Mapping[int, list[float]]], notes: list[str]
) -> list[int]:
    """The epochs every curve has a value in; trailing partial ones dropped with a note."""
    every = sorted(set().union(*(per_epoch.keys() for per_epoch in grouped.values())))
    complete = [e for e in every if all(e in per_epoch for per_epoch in grouped.values())]
    if not complete:
        raise RunLogError("(log)", "no epoch has a value of every chosen column or tag")
    last = complete[-1]
    for key, per_epoch in grouped.items():
        missing = [e for e in every if e <= last and e not in per_epoch]
        if missing:
            raise RunLogError(
                key,
                f"no value in epoch {missing[0]} (it has {len(per_epoch)} of {len(every)} "
                "epochs); every curve needs one value per epoch",
            )
    dropped = [e for e in every if e > last]
    if dropped:
        notes.append(
            f"epoch{'s' if len(dropped) > 1 else ''} {', '.join(map(str, dropped))} left out: "
            "not every curve has a value there yet (a run stopped mid-epoch)"
        )
    return complete


def _one(values: list[float], rule: Aggregation) -> float:
    if rule is Aggregation.LAST or len(values) == 1:
        return values[-1]
    if not all(math.isfinite(v) for v in values):
        # A non-finite step makes the epoch non-finite: evidence of divergence, kept as such.
        return math.nan
    return math.fsum(values) / len(values)


def _named(exc: ValidationError, choices: list[Choice]) -> RunLogError:
    """The first problem of *exc*, named after the column or tag of the curve at fault."""
    first = exc.errors(include_url=False, include_input=False)[0]
    reason = str(first["msg"]).removeprefix("Value error, ")
    loc = first["loc"]
    curve = str(loc[0]) if loc else ""
    source = next((c.key for c in choices if c.curve == curve), None)
    if source is None:
        return RunLogError("(log)", reason)
    where = "" if len(loc) < 2 else f"epoch {int(loc[1]) + 1}: "
    return RunLogError(source, f"(as {curve}) {where}{reason}")
