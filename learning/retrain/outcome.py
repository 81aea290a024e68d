"""What one retrain did: nothing (and why), or the candidate version it registered with the
verdicts of both gates. ``to_dict`` is the JSON that ``thumbloop retrain`` prints and the Celery
task returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from learning.generator.gate import GeneratorStatus

GateVerdict = Literal["passed", "failed"]


@dataclass(frozen=True)
class RetrainOutcome:
    skipped: str | None = None  # why nothing was trained; None when a candidate was registered
    votes: int | None = None  # the votes on record, when none of them could be learned from
    version: str | None = None  # the candidate's model version
    gate: GateVerdict | None = None  # both gates together: what promotion goes by
    classifier_gate: GateVerdict | None = None
    generator_gate: GeneratorStatus | None = None
    reasons: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()  # set on the candidate: challenger, champion (auto-promote)
    metrics: Mapping[str, float] = field(default_factory=dict)
    run_id: str | None = None  # the candidate's MLflow run

    @property
    def passed(self) -> bool:
        return self.gate == "passed"

    def to_dict(self) -> dict[str, Any]:
        """A skipped retrain says why (and how many votes there were, when that is why); a
        registered candidate every field but those two."""
        if self.skipped is not None:
            out: dict[str, Any] = {"skipped": self.skipped}
            if self.votes is not None:
                out["votes"] = self.votes
            return out
        return {
            "version": self.version,
            "gate": self.gate,
            "classifier_gate": self.classifier_gate,
            "generator_gate": self.generator_gate,
            "reasons": list(self.reasons),
            "aliases": list(self.aliases),
            "metrics": dict(self.metrics),
            "run_id": self.run_id,
        }
