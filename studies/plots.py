"""PNG plots (matplotlib, Agg backend: no display needed, safe in worker threads)."""

from __future__ import annotations

import io
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a window

from matplotlib.figure import Figure
from optuna.artifacts import FileSystemArtifactStore

# One color per diagnosis label, the same in every plot.
LABEL_COLORS = {
    "healthy": "#2ca02c",
    "overfitting": "#ff7f0e",
    "underfitting": "#9467bd",
    "undertrained": "#1f77b4",
    "diverged": "#d62728",
    "inconclusive": "#7f7f7f",
    None: "#bbbbbb",
}


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _finite(values: Sequence[float | None]) -> list[float]:
    # matplotlib draws NaN as a gap, which is what a non-finite epoch should look like.
    return [v if v is not None and math.isfinite(v) else math.nan for v in values]


def trial_curves_png(
    curves: dict[str, Any], *, title: str, label: str | None, best_epoch: int | None
) -> bytes:
    """Train/val loss and accuracy per epoch, best epoch marked, label in the title."""
    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    n = max(
        (len(curves.get(k) or []) for k in ("train_loss", "val_loss", "train_acc", "val_acc")),
        default=0,
    )
    epochs = list(range(1, n + 1))
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "acc")):
        for split, style in (("train", "-"), ("val", "--")):
            values = curves.get(f"{split}_{metric}")
            if values:
                ax.plot(
                    epochs[: len(values)],
                    _finite(values),
                    style,
                    marker="o",
                    ms=3,
                    label=f"{split} {metric}",
                )
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", lw=1, ls=":", label=f"best epoch {best_epoch}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "loss")
        ax.grid(alpha=0.3)
        if n:
            ax.legend(fontsize=8)
    if n == 0:
        loss_ax.text(0.5, 0.5, "no epochs recorded yet", ha="center", transform=loss_ax.transAxes)
    acc_ax.set_ylim(-0.02, 1.02)
    color = LABEL_COLORS.get(label, LABEL_COLORS[None])
    fig.suptitle(f"{title} — {label or 'no diagnosis yet'}", color=color, fontweight="bold")
    return _png(fig)


def trial_title(study_name: str, number: int, lr: float | None) -> str:
    """The title of a trial's curves plot: the study, the slot number and its learning rate."""
    return f"{study_name} #{number}" + (f" lr={lr:g}" if lr is not None else "")


# A trial attempt's curves plot, as the dashboard lists it: an Optuna artifact whose file
# is rendered on its first read (``LazyCurvesStore``), not by the worker. Rendering took
# ~0.16 s of every trial's fixed cost, mostly for plots nobody opens. Named from ids only,
# never from user input (a study name could hold ``../``); one per attempt.
# Shaped like the UUIDs Optuna gives uploads: the dashboard serves only ids of hex digits and
# dashes. "c0a5" marks a curves plot; the attempt and the trial id follow, in hex.
_CURVES_ID = re.compile(r"00000000-c0a5-[0-9a-f]{4}-0000-([0-9a-f]{12})")


def curves_artifact_id(trial_id: int, attempt: int) -> str:
    """The artifact id (a file name in the artifacts folder) of one attempt's curves plot."""
    return f"00000000-c0a5-{attempt:04x}-0000-{trial_id:012x}"


class LazyCurvesStore(FileSystemArtifactStore):
    """The artifacts folder as Optuna's file-system store, where a curves plot registered
    by a worker (``curves_artifact_id``) is rendered by *render(trial_id)* on its first
    read and kept as the file from then on; every other artifact is read as stored."""

    def __init__(self, base_path: Path, render: Callable[[int], bytes]) -> None:
        super().__init__(base_path)
        self._base = base_path
        self._render = render

    def open_reader(self, artifact_id: str) -> BinaryIO:
        match = _CURVES_ID.fullmatch(artifact_id)
        path = self._base / artifact_id
        if match is not None and not path.exists():
            self._base.mkdir(parents=True, exist_ok=True)
            # Written aside and renamed: a concurrent reader sees no half-written file.
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
            partial.write_bytes(self._render(int(match.group(1), 16)))
            partial.replace(path)
        return super().open_reader(artifact_id)


@dataclass(frozen=True)
class LrPoint:
    lr: float
    val_acc: float | None  # best val accuracy of the trial; None when it has none
    label: str | None
    number: int


def study_lr_png(points: Sequence[LrPoint], *, title: str) -> bytes:
    """Best validation accuracy against learning rate (log x), colored by label."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    seen: set[str | None] = set()
    for point in sorted(points, key=lambda p: p.lr):
        # A trial without a finite accuracy (diverged at once) sits on the floor.
        y = point.val_acc if point.val_acc is not None and math.isfinite(point.val_acc) else 0.0
        color = LABEL_COLORS.get(point.label, LABEL_COLORS[None])
        legend = point.label or "pending"
        ax.scatter(
            [point.lr],
            [y],
            s=60,
            color=color,
            edgecolor="black",
            zorder=3,
            label=None if point.label in seen else legend,
        )
        ax.annotate(
            f"#{point.number}", (point.lr, y), textcoords="offset points", xytext=(5, 5), fontsize=7
        )
        seen.add(point.label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("best validation accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    if points:
        ax.legend(fontsize=8, title="label")
    else:
        ax.text(0.5, 0.5, "no trials yet", ha="center", transform=ax.transAxes)
    ax.set_title(title)
    return _png(fig)


def lr_range_png(lr_range: dict[str, Any], *, title: str) -> bytes:
    """An LR range test (``TrialRow.lr_range``): raw and smoothed training loss against the
    learning rate (log x), the suggestion marked with its rule, the reason below."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    lrs = lr_range["lrs"]
    ax.plot(lrs, _finite(lr_range["losses"]), color="#bbbbbb", lw=1, label="loss")
    smoothed = _finite(lr_range["smoothed"])
    ax.plot(lrs, smoothed, color="#1f77b4", lw=2, label="smoothed loss")
    suggestion = lr_range["suggestion"]
    if suggestion is not None:
        ax.axvline(
            suggestion,
            color=LABEL_COLORS["healthy"],
            ls="--",
            label=f"suggested lr {suggestion:.3g} ({lr_range['rule']})",
        )
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        # The blow-up at the top would squash the interesting part: cap the y axis at 1.5x
        # the starting loss; the floor shows the lowest raw loss too.
        raw = [v for v in _finite(lr_range["losses"]) if math.isfinite(v)]
        low, start = min(finite + raw), finite[0]
        ax.set_ylim(low - 0.05 * abs(start - low) - 0.05, max(start, low) * 1.5 + 0.05)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3, which="both")
    if lrs:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no steps recorded", ha="center", transform=ax.transAxes)
    ax.set_title(title)
    fig.text(0.01, -0.02, str(lr_range.get("reason") or ""), fontsize=7, wrap=True)
    return _png(fig)
