"""The gate: may a candidate replace the champion? Pure decisions on measured numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learning.thumbs import ThumbExample


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]


def vote_agreement(examples: Sequence[ThumbExample], predicted: Sequence[str]) -> float:
    """Weighted share of held-back thumbs the model now agrees with: a 👍'd label still
    predicted, a 👎'd label no longer predicted. NaN without examples."""
    if not examples:
        return float("nan")
    w = np.array([e.weight for e in examples])
    ok = np.array(
        [
            (p == e.label) if e.sign > 0 else (p != e.label)
            for e, p in zip(examples, predicted, strict=True)
        ]
    )
    return float((w * ok).sum() / w.sum())


def decide(champion: dict[str, float], candidate: dict[str, float], tolerance: float) -> GateResult:
    reasons: list[str] = []
    for key in ("golden_intent_accuracy", "golden_sentiment_accuracy"):
        drop = champion[key] - candidate[key]
        if drop > tolerance:
            reasons.append(f"{key} dropped {drop * 100:.2f} pt (tolerance {tolerance * 100:.2f})")
    c_votes, k_votes = (
        champion.get("heldout_vote_agreement"),
        candidate.get("heldout_vote_agreement"),
    )
    if (
        c_votes is not None
        and k_votes is not None
        and not np.isnan(c_votes)
        and k_votes < c_votes - 1e-9
    ):
        reasons.append(f"held-back vote agreement fell {c_votes:.4f} -> {k_votes:.4f}")
    return GateResult(not reasons, reasons or ["all checks passed"])
