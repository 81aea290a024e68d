"""From thumbs to training examples: rater weights, per-rater caps, consensus, hold-out.

A 👍 on a reply says the predicted intent was right (a positive example); a 👎 says it was
wrong (a complementary label), weakly unless a follow-up says why
(:mod:`learning.retrain.signals` reads votes and follow-ups together). Raters are trusted by
how often they agree with the consensus of other raters on the same message, or - where nobody
else voted - with the model's own confident beliefs; no rater may carry more than
``max_share`` of the total weight.

A generated reply can be wrong in two ways: wrong intent, or right intent and poor wording. So on
generated replies a 👍 still labels the intent, but a 👎 teaches only the generator
(:func:`reply_judgements`), never pushes the intent down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from learning.generator.kto_data import ReplyJudgement

GENERATIVE = "generative"


@dataclass(frozen=True)
class VoteRecord:
    interaction_id: str
    text: str
    intent: str  # the intent the serving model predicted for this message
    confidence: float
    rater: str
    value: int  # +1 / -1
    at: datetime
    strategy: str = "template"  # Reply.strategy of the rated reply
    reply_text: str = ""
    prompt: list[dict[str, str]] | None = field(default=None, hash=False)
    generator: str | None = None  # Reply.generator: the version that wrote a generated reply


@dataclass(frozen=True)
class ThumbExample:
    interaction_id: str
    text: str
    label: str
    sign: int  # +1: label is right; -1: label is wrong
    weight: float
    at: datetime
    signal: str = "thumb"  # thumb | pick (a rater chose the label) | other | review
    # the share of ``weight`` left after a weak signal was discounted (a bare 👎 on a confident
    # prediction, :func:`learning.retrain.signals.doubt`); training scales weights by their
    # undiscounted mean, so a lone discounted example stays weak instead of being scaled back up
    discount: float = 1.0


CONFIDENT, UNSURE = 0.8, 0.3


def rater_trust(
    votes: Sequence[VoteRecord], no_belief: frozenset[str] = frozenset()
) -> dict[str, float]:
    """Trust in [0, 1]: 2 * agreement - 1 with a prior of two agreements (an unseen rater is
    trusted). Agreement counts votes that match the other raters' majority on the same message
    (all raters' if the others tie), or where no majority exists the model's confident belief:
    👍 when it was confident, 👎 when it was unsure. Predictions of ``no_belief`` intents (out
    of scope: low confidence is why they were predicted) hold no belief to compare with."""
    by_item: dict[str, list[VoteRecord]] = defaultdict(list)
    for v in votes:
        by_item[v.interaction_id].append(v)
    agree: dict[str, float] = defaultdict(float)
    seen: dict[str, float] = defaultdict(float)
    for item in by_item.values():
        everyone = sum(o.value for o in item)
        for v in item:
            others = everyone - v.value
            majority = others if others != 0 else (everyone if len(item) > 2 else 0)
            if majority != 0:
                reference = 1 if majority > 0 else -1
            elif v.intent in no_belief:
                continue
            elif v.confidence >= CONFIDENT:
                reference = 1
            elif v.confidence <= UNSURE:
                reference = -1
            else:
                continue
            seen[v.rater] += 1
            agree[v.rater] += v.value == reference
    raters = {v.rater for v in votes}
    return {r: max(0.0, 2 * (agree[r] + 2) / (seen[r] + 2) - 1) for r in raters}


def cap_shares(weights: dict[str, float], max_share: float) -> dict[str, float]:
    """Lower the raters above ``max_share`` of the total so that each holds exactly that share
    of the new total (closed form, repeated while the capped set grows). When the cap cannot
    hold (too few raters), the capped raters are levelled to the smallest of them."""
    w = dict(weights)
    capped: set[str] = set()
    while True:
        total = sum(w.values())
        over = {r for r, x in w.items() if r not in capped and x > max_share * total + 1e-12}
        if not over:
            return w
        capped |= over
        uncapped = sum(x for r, x in w.items() if r not in capped)
        if max_share * len(capped) >= 1 or uncapped <= 0:
            level = min(weights[r] for r in capped)
            return {r: (level if r in capped else x) for r, x in w.items()}
        level = max_share * uncapped / (1 - max_share * len(capped))
        for r in capped:
            w[r] = min(weights[r], level)


def weighted_items(
    votes: Sequence[VoteRecord], max_share: float, no_belief: frozenset[str] = frozenset()
) -> list[tuple[list[VoteRecord], float]]:
    """Each rated interaction with its consensus score: the sum of its votes, each weighted by
    its rater's trust and per-rater cap (positive: 👍 wins; zero when the raters cancel out)."""
    trust = rater_trust(votes, no_belief)
    per_rater_total: dict[str, float] = defaultdict(float)
    for v in votes:
        per_rater_total[v.rater] += trust[v.rater]
    capped = cap_shares(per_rater_total, max_share)
    scale = {r: (capped[r] / t if t > 0 else 0.0) for r, t in per_rater_total.items()}
    by_item: dict[str, list[VoteRecord]] = defaultdict(list)
    for v in votes:
        by_item[v.interaction_id].append(v)
    return [
        (item, sum(v.value * trust[v.rater] * scale[v.rater] for v in item))
        for item in by_item.values()
    ]


def reply_judgements(votes: Sequence[VoteRecord], max_share: float) -> list[ReplyJudgement]:
    """Generated replies that carry their prompt, with the same rater weighting as intents."""
    out: list[ReplyJudgement] = []
    for item, score in weighted_items(votes, max_share):
        first = item[0]
        if first.strategy != GENERATIVE or not first.prompt or abs(score) < 1e-6:
            continue
        out.append(
            ReplyJudgement(
                first.interaction_id,
                first.prompt,
                first.reply_text,
                score > 0,
                abs(score),
                max(v.at for v in item),
                first.generator,
            )
        )
    return out


def split_recent(
    examples: Sequence[ThumbExample], holdout: float
) -> tuple[list[ThumbExample], list[ThumbExample]]:
    """Train on the older part, hold back the most recent ``holdout`` share for the gate."""
    ordered = sorted(examples, key=lambda e: (e.at, e.interaction_id))
    k = round(len(ordered) * holdout)
    if k == 0:
        return list(ordered), []
    return ordered[:-k], ordered[-k:]
