"""The gate: may a candidate replace the champion? Pure decisions on measured numbers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from learning.retrain.thumbs import CONFIDENT, ThumbExample


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


# Confirmed answers a candidate may change: 1 in 100, rounded down (none below 100 of them). Not
# zero: a 👍 is sometimes wrong (a misclick, a noisy rater), and a candidate that fixes such
# an answer "flips" it; in the simulator (noise 0.1) about 0.5 % of confident 👍'd answers are
# wrong. One user's 👎 teaching the bot to stop answering a whole intent flips far more.
FLIP_SHARE = 0.01


@dataclass(frozen=True)
class Flips:
    """Held-back messages where the champion was confident (top probability ≥ ``CONFIDENT``)
    and users confirmed its answer (a 👍 consensus or a pick of that intent): ``confirmed`` of
    them, ``flipped`` of those the candidate answers differently."""

    flipped: int
    confirmed: int

    @property
    def allowed(self) -> int:
        return int(FLIP_SHARE * self.confirmed + 1e-9)

    @property
    def too_many(self) -> bool:
        return self.flipped > self.allowed


def confirmed_flips(
    examples: Sequence[ThumbExample],
    champion: Sequence[str],
    champion_confidence: Sequence[float],
    candidate: Sequence[str],
) -> Flips:
    """Count the confirmed confident answers of the champion that the candidate changes."""
    flipped = confirmed = 0
    for e, a, c, b in zip(examples, champion, champion_confidence, candidate, strict=True):
        if e.sign > 0 and e.label == a and c >= CONFIDENT:
            confirmed += 1
            flipped += b != a
    return Flips(flipped, confirmed)


def decide(
    champion: dict[str, float],
    candidate: dict[str, float],
    tolerance: float,
    heldout: PairedVotes | None = None,
    flips: Flips | None = None,
) -> GateResult:
    """Golden accuracies may drop by ``tolerance``; on the held-back votes the candidate must not
    be significantly worse (``heldout``), or, without the paired counts, not worse at all; and it
    may change at most ``FLIP_SHARE`` of the confident answers users confirmed (``flips``)."""
    reasons: list[str] = []
    if flips is not None and flips.too_many:
        reasons.append(
            f"changes {flips.flipped} of {flips.confirmed} confident answers users confirmed "
            f"(at most {flips.allowed} allowed)"
        )
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
