"""CSV run logs: Keras' CSVLogger (one row per epoch) and Lightning's CSVLogger metrics.csv
(per-step rows and per-epoch rows, blanks where a row does not log a column).

With an ``epoch`` column the rows are grouped by it (`_assemble` turns each group into one
value); without one, each row is an epoch. A blank cell is a value not logged in that row;
``nan``/``inf`` are non-finite values (Keras and Lightning write them so), kept as evidence of
divergence. The standard library's csv module does the parsing.
"""

from __future__ import annotations

import csv
import io
import math

from studies.runlogs._model import IgnoredKey, IgnoreReason, LogFormat, RawLog, RunLogError


def parse_csv(text: str) -> RawLog:
    """The numeric columns of the CSV *text*, positioned by epoch."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or not lines[0].strip():
        raise RunLogError("(csv)", "empty: expected a header row of column names")
    # Comma-separated unless the header is clearly tab- or semicolon-separated.
    delimiter = max(",\t;", key=lines[0].count)
    try:
        reader = csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
        rows = [row for row in reader if row]
    except csv.Error as exc:  # a NUL byte, a cell over the csv module's size limit
        raise RunLogError("(csv)", f"not readable as CSV ({exc})") from None
    header = [name.strip() for name in rows[0]]
    seen: set[str] = set()
    for index, name in enumerate(header):
        if not name:
            raise RunLogError("(csv)", f"column {index + 1} of the header has no name")
        if name in seen:
            raise RunLogError(name, "two columns have this name")
        seen.add(name)
    epoch_column = next((i for i, name in enumerate(header) if name.lower() == "epoch"), None)
    raw = RawLog(format=LogFormat.CSV, by_epoch=True)
    values: list[list[tuple[float, float]]] = [[] for _ in header]
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise RunLogError(
                "(csv)", f"line {line} has {len(row)} fields, the header {len(header)}"
            )
        position = float(line - 2)  # without an epoch column each row is an epoch
        if epoch_column is not None:
            position = _epoch(row[epoch_column], header[epoch_column], line)
        for index, cell in enumerate(row):
            name, cell = header[index], cell.strip()
            if not cell or index == epoch_column or name in raw.non_numeric:
                continue
            try:
                values[index].append((position, float(cell)))
            except ValueError:
                raw.non_numeric[name] = f"line {line} holds {cell[:40]!r}"
    for index, name in enumerate(header):
        if index == epoch_column:
            raw.ignored.append(
                IgnoredKey(source=name, reason=IgnoreReason.INDEX, detail="the epoch of each row")
            )
        elif name in raw.non_numeric:
            continue  # `_assemble` reports it, or refuses it when it was chosen
        elif values[index]:
            raw.series[name] = values[index]
        else:
            raw.ignored.append(
                IgnoredKey(source=name, reason=IgnoreReason.EMPTY, detail="no value in any row")
            )
    return raw


def _epoch(cell: str, name: str, line: int) -> float:
    try:
        epoch = float(cell)
    except ValueError:
        epoch = math.nan
    if not math.isfinite(epoch) or epoch != int(epoch) or epoch < 0:
        raise RunLogError(name, f"line {line} holds {cell[:40]!r}, not an epoch number")
    return epoch
