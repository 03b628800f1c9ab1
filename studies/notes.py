"""The Markdown note of a finished trial in the Optuna dashboard: verdict, evidence, next steps."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from studies.diagnosis import Diagnosis


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "–"
    return str(value)


def trial_note(
    diagnosis: Diagnosis, *, params: dict[str, Any], state: str, stop_reason: str | None
) -> str:
    """A dashboard note (Markdown) for one trial's diagnosis."""
    lines = [
        f"## {diagnosis.label.value} (confidence {diagnosis.confidence:.2f})",
        "",
        diagnosis.summary,
        "",
        "Parameters: " + ", ".join(f"`{k}={_fmt(v)}`" for k, v in params.items()),
        f"State: {state}" + (f" ({stop_reason})" if stop_reason else ""),
    ]
    if diagnosis.best_epoch is not None:
        lines.append(f"Best epoch: {diagnosis.best_epoch}")
    lines += ["", "### Evidence", "", "| measure | value |", "|---|---|"]
    for key, value in diagnosis.evidence.model_dump().items():
        if value is not None and value != []:
            lines.append(f"| {key} | {_fmt(value)} |")
    if diagnosis.findings:
        lines += ["", "### Findings", ""]
        lines += [f"- **{f.kind.value}**: {f.message}" for f in diagnosis.findings]
    if diagnosis.recommendations:
        lines += ["", "### Next steps", ""]
        for i, rec in enumerate(diagnosis.recommendations, start=1):
            change = ", ".join(f"`{k}: {_fmt(v)}`" for k, v in rec.spec_change.items())
            lines.append(
                f"{i}. **{rec.action}** — {rec.reason}" + (f" (spec: {change})" if change else "")
            )
    return "\n".join(lines) + "\n"
