"""TensorBoard run logs: one event file, or a folder of them (searched recursively).

Read with TensorBoard's own event reader (`EventAccumulator`), imported only here and only
when an event file is read: it is heavy, and `sweepdoc diagnose` on a JSON or CSV file must
not pay for it. Both scalar encodings are read: the simple values PyTorch's `SummaryWriter`
writes and the tensors of TensorFlow 2 / Keras (the `scalars` plugin). A folder whose event
files sit in subfolders (Keras: ``train/``, ``validation/``) names each tag after its
subfolder (``validation/epoch_loss``), so the subfolder's name says the split.

Positions: when the run logged an ``epoch`` scalar (Lightning does, at every logging step),
each step belongs to the epoch it held at that step; otherwise positions stay steps and
`_assemble` groups them.
"""

from __future__ import annotations

import bisect
import math
from pathlib import Path
from typing import Any

from studies.runlogs._model import IgnoredKey, IgnoreReason, LogFormat, Points, RawLog, RunLogError

EVENT_FILE_MARK = "tfevents"  # every event file is named events.out.tfevents.<time>.<host>…


def is_event_file(path: Path) -> bool:
    """Whether *path* is named like a TensorBoard event file."""
    return EVENT_FILE_MARK in path.name


def parse_tensorboard(path: Path) -> RawLog:
    """The scalar series of the event file or folder *path*."""
    if path.is_dir():
        files = sorted(p for p in path.rglob(f"*{EVENT_FILE_MARK}*") if p.is_file())
        if not files:
            raise RunLogError(str(path), "no TensorBoard event file (events.out.tfevents.*) in it")
        sources = sorted({f.parent for f in files})
        prefixes = {d: d.relative_to(path).as_posix() for d in sources}
    elif path.is_file():
        sources = [path]
        prefixes = {path: "."}
    else:
        raise RunLogError(str(path), "no such file or folder")
    raw = RawLog(
        format=LogFormat.TENSORBOARD,
        by_epoch=False,
        nothing_chosen_hint="a folder of several runs: give one run's folder",
    )
    for source in sources:
        prefix = "" if prefixes[source] == "." else prefixes[source] + "/"
        _read_source(source, prefix, raw)
    if not raw.series and not raw.ignored:
        raise RunLogError(str(path), "the event files hold no scalar (or cannot be read)")
    _epochs_from_epoch_tag(raw)
    return raw


def _read_source(source: Path, prefix: str, raw: RawLog) -> None:
    # Heavy (protobuf and TensorBoard's backend): imported here, when an event file is read.
    from tensorboard.backend.event_processing.event_accumulator import (
        SCALARS,
        TENSORS,
        EventAccumulator,
    )

    # size_guidance 0 keeps every point: the default keeps a sample of 10,000 per tag.
    accumulator = EventAccumulator(str(source), size_guidance={SCALARS: 0, TENSORS: 0})
    try:
        accumulator.Reload()
        _collect(accumulator, prefix, raw)
    except Exception as exc:  # the reader's own (protobuf, DataLoss, tensor decoding) errors
        raise RunLogError(str(source), f"not a readable TensorBoard event file ({exc})") from exc


def _collect(accumulator: Any, prefix: str, raw: RawLog) -> None:
    tags = accumulator.Tags()
    for tag in tags["scalars"]:
        raw.series[prefix + tag] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    for tag in tags["tensors"]:
        plugin = accumulator.SummaryMetadata(tag).plugin_data.plugin_name
        events = accumulator.Tensors(tag)
        points = [_scalar(e) for e in events] if plugin == "scalars" else []
        if points and all(p is not None for p in points):
            raw.series[prefix + tag] = [p for p in points if p is not None]
        else:
            raw.ignored.append(
                IgnoredKey(
                    source=prefix + tag,
                    reason=IgnoreReason.NOT_A_METRIC,
                    detail=f"not a scalar ({plugin or 'no'} plugin)",
                )
            )


def _scalar(event: Any) -> tuple[float, float] | None:
    from tensorboard.util import tensor_util

    array = tensor_util.make_ndarray(event.tensor_proto)
    return (float(event.step), float(array.item())) if array.size == 1 else None


def _epochs_from_epoch_tag(raw: RawLog) -> None:
    """Steps → epochs through the run's own ``epoch`` scalar, when it logged one."""
    epoch_points: Points | None = raw.series.get("epoch")
    if not epoch_points:
        return
    bad = next((v for _, v in epoch_points if not math.isfinite(v) or v < 0 or v != int(v)), None)
    if bad is not None:
        raise RunLogError("epoch", f"the epoch scalar holds {bad}, not an epoch number")
    steps = [step for step, _ in epoch_points]
    for key, points in raw.series.items():
        if key == "epoch":
            continue
        raw.series[key] = [
            (epoch_points[max(bisect.bisect_right(steps, step) - 1, 0)][1], value)
            for step, value in points
        ]
    raw.by_epoch = True
    raw.notes.append("steps grouped into epochs by the run's 'epoch' scalar (Lightning's)")
