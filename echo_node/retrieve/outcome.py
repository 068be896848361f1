"""What a retrieval from a source gave: how many instances the source holds, how many the node
stored, and why any did not arrive."""

from __future__ import annotations

from dataclasses import dataclass, field

from echo_node.ingest import IngestResult


class RetrieveError(RuntimeError):
    """The source could not be asked, or refused; the message says which and why."""


class StudyNotFound(RetrieveError):
    """The source holds no instance of the study."""


@dataclass
class Tally:
    """Instances that came back, counted as each is stored (C-GET, WADO-RS)."""

    stored: int = 0  # acknowledged: stored, or already held with the same bytes
    quarantined: int = 0
    failed: int = 0  # not written (out of space, storage error)
    reasons: list[str] = field(default_factory=list)  # of the first few refusals

    def add(self, result: IngestResult) -> None:
        if result.acknowledged:
            self.stored += 1
            return
        if result.outcome == "quarantined":
            self.quarantined += 1
        else:
            self.failed += 1
        if len(self.reasons) < 5:
            self.reasons.append(result.reason)

    @property
    def not_stored(self) -> int:
        return self.quarantined + self.failed


@dataclass(frozen=True)
class Retrieval:
    """One study's retrieval. ``expected``: what the source said it holds before (C-FIND's
    Number of Study Related Instances, QIDO-RS's instance list), None if it did not say."""

    source: str
    method: str  # "C-GET", "C-MOVE", "WADO-RS"
    study_instance_uid: str
    expected: int | None
    stored: int
    not_stored: int
    seconds: float
    problem: str = ""  # why the retrieval ended early or what the source reported

    @property
    def total(self) -> int:
        """How many instances the study has at the source, as far as the node can tell."""
        return max(self.expected or 0, self.stored + self.not_stored)

    @property
    def complete(self) -> bool:
        return self.stored > 0 and self.stored >= self.total and not self.problem

    def describe(self) -> str:
        text = (
            f"{self.stored} of {self.total} instance(s) of study {self.study_instance_uid} "
            f"retrieved from {self.source} ({self.method})"
        )
        if self.not_stored:
            text += f", {self.not_stored} not stored"
        return text + (f": {self.problem}" if self.problem else "")
