"""The gate: may a candidate replace the champion? Pure decisions on measured numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learning.retrain.thumbs import ThumbExample


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reasons: list[str]


def _agrees(e: ThumbExample, predicted: str) -> bool:
    """A 👍'd label still predicted, or a 👎'd label no longer predicted."""
    return (predicted == e.label) if e.sign > 0 else (predicted != e.label)


def vote_agreement(examples: Sequence[ThumbExample], predicted: Sequence[str]) -> float:
    """Weighted share of held-back thumbs the model now agrees with: a 👍'd label still
    predicted, a 👎'd label no longer predicted. NaN without examples."""
    if not examples:
        return float("nan")
    w = np.array([e.weight for e in examples])
    ok = np.array([_agrees(e, p) for e, p in zip(examples, predicted, strict=True)])
    return float((w * ok).sum() / w.sum())


Z_ONE_SIDED_5 = 1.645


@dataclass(frozen=True)
class PairedVotes:
    """Held-back votes on which the two models disagree, by weight: ``worse`` where only the
    champion agrees with the vote, ``better`` where only the candidate does."""

    worse: float
    better: float
    spread: float  # sqrt of the summed squared weights of those votes

    @property
    def significantly_worse(self) -> bool:
        """One-sided McNemar test at 5 %: the held-back slice is a few hundred noisy votes, and a
        candidate that merely flips one or two of them is not worse."""
        return self.worse - self.better > Z_ONE_SIDED_5 * self.spread


def paired_votes(
    examples: Sequence[ThumbExample], champion: Sequence[str], candidate: Sequence[str]
) -> PairedVotes:
    worse = better = square = 0.0
    for e, a, b in zip(examples, champion, candidate, strict=True):
        ok_a, ok_b = _agrees(e, a), _agrees(e, b)
        if ok_a != ok_b:
            worse += e.weight if ok_a else 0.0
            better += e.weight if ok_b else 0.0
            square += e.weight**2
    return PairedVotes(worse, better, float(np.sqrt(square)))


def decide(
    champion: dict[str, float],
    candidate: dict[str, float],
    tolerance: float,
    heldout: PairedVotes | None = None,
) -> GateResult:
    """Golden accuracies may drop by ``tolerance``; on the held-back votes the candidate must not
    be significantly worse (``heldout``), or, without the paired counts, not worse at all."""
    reasons: list[str] = []
    for key in ("golden_intent_accuracy", "golden_sentiment_accuracy"):
        drop = champion[key] - candidate[key]
        if drop > tolerance:
            reasons.append(f"{key} dropped {drop * 100:.2f} pt (tolerance {tolerance * 100:.2f})")
    c_votes, k_votes = (
        champion.get("heldout_vote_agreement"),
        candidate.get("heldout_vote_agreement"),
    )
    if heldout is not None:
        if heldout.significantly_worse:
            reasons.append(
                f"held-back votes: significantly worse (agreement {c_votes:.4f} -> {k_votes:.4f}; "
                f"only the champion agrees on {heldout.worse:.1f}, only the candidate on "
                f"{heldout.better:.1f} by weight)"
            )
    elif (
        c_votes is not None
        and k_votes is not None
        and not np.isnan(c_votes)
        and k_votes < c_votes - 1e-9
    ):
        reasons.append(f"held-back vote agreement fell {c_votes:.4f} -> {k_votes:.4f}")
    return GateResult(not reasons, reasons or ["all checks passed"])
