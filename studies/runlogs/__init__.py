"""Run logs of other tools as the diagnoser's curves: CSV (Keras' and Lightning's CSVLogger)
and TensorBoard event files or folders, with the mapping that says which column or tag became
which curve and why every other one did not (docs/diagnoser.md, "Other log formats").

Pure Python and the standard library's csv module; TensorBoard's reader is imported only when
an event file is read.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

from studies.runlogs._assemble import assemble
from studies.runlogs._csv import parse_csv
from studies.runlogs._model import (
    Aggregation,
    ChosenBy,
    CurveMapping,
    IgnoredKey,
    IgnoreReason,
    LogFormat,
    MappedCurve,
    RunLog,
    RunLogError,
)
from studies.runlogs._names import parse_map
from studies.runlogs._tensorboard import is_event_file, parse_tensorboard

__all__ = [
    "Aggregation",
    "ChosenBy",
    "CurveMapping",
    "IgnoreReason",
    "IgnoredKey",
    "LogFormat",
    "MappedCurve",
    "RunLog",
    "RunLogError",
    "detect_format",
    "parse_map",
    "read_csv",
    "read_tensorboard",
    "read_tensorboard_bytes",
]


def read_csv(
    text: str, *, overrides: Mapping[str, str] | None = None, num_classes: int | None = None
) -> RunLog:
    """The curves of a CSV log's *text*; *overrides* ({curve: column}) beat the names."""
    return assemble(parse_csv(text), overrides or {}, num_classes=num_classes)


def read_tensorboard(
    path: Path, *, overrides: Mapping[str, str] | None = None, num_classes: int | None = None
) -> RunLog:
    """The curves of a TensorBoard event file or folder; *overrides* ({curve: tag})."""
    return assemble(parse_tensorboard(path), overrides or {}, num_classes=num_classes)


def read_tensorboard_bytes(
    data: bytes, *, overrides: Mapping[str, str] | None = None, num_classes: int | None = None
) -> RunLog:
    """The curves of one event file's bytes (an upload): read from a private temporary file."""
    with tempfile.TemporaryDirectory(prefix="sweepdoc-tb-") as folder:
        path = Path(folder) / "events.out.tfevents.upload"
        path.write_bytes(data)
        try:
            return read_tensorboard(path, overrides=overrides, num_classes=num_classes)
        except RunLogError as exc:
            if exc.field != str(path):
                raise
            # The temporary file's name means nothing to the sender: the upload is at fault.
            raise RunLogError("(log)", exc.reason) from None


def detect_format(path: Path) -> LogFormat:
    """The format of *path* (never AUTO): a folder or an event file is TensorBoard, ``.csv``/
    ``.tsv`` is CSV, ``.json`` (and stdin, ``-``) is JSON; otherwise the first character
    decides (``{`` or ``[`` is JSON, anything else CSV)."""
    if str(path) == "-" or path.suffix.lower() == ".json":
        return LogFormat.JSON
    if path.is_dir() or is_event_file(path):
        return LogFormat.TENSORBOARD
    if path.suffix.lower() in (".csv", ".tsv"):
        return LogFormat.CSV
    try:
        with path.open("rb") as handle:
            start = handle.read(512).lstrip()
    except OSError:
        return LogFormat.JSON  # the JSON reader names the missing or unreadable file
    return LogFormat.JSON if start[:1] in (b"{", b"[") else LogFormat.CSV
