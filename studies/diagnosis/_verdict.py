"""A rule's verdict: the label, its raw score and the sentence that says why."""

from dataclasses import dataclass

from studies.diagnosis._result import Label


@dataclass(frozen=True)
class Verdict:
    """A label, its confidence and the sentence that says why."""

    label: Label
    confidence: float
    reason: str
