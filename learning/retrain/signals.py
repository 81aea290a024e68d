"""Votes and follow-ups read together, each for what it says about the predicted intent.

After a 👎 a rater may say what went wrong (``thumbloop.contracts.Correction``):

- 👍: the predicted intent is right (rater weight);
- a pick of intent L: L is right, a full label that replaces that rater's 👎 (``PICK_WEIGHT`` ×
  rater weight);
- "right topic, the answer didn't help": the predicted intent is right (rater weight); that
  rater's 👎 leaves the intent path (it still moves reply choice: posteriors, KTO);
- "something else": the predicted intent is wrong (rater weight, not discounted);
- a bare 👎: the predicted intent is wrong, weakly (rater weight × :func:`doubt`).

Rater weight is trust × the per-rater cap of :mod:`learning.retrain.thumbs`; the cap counts a
pick's full weight. A bare 👎 is discounted by how likely the prediction is to be wrong given the
model's confidence and how many distinct raters said it was wrong, so one rater's 👎 on a
confident prediction cannot flip it, while a few raters agreeing, or one on an unsure
prediction, still push it down. On generated replies a bare 👎 teaches only the generator, as
before; follow-ups there do say what the intent was.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from learning.retrain.thumbs import (
    GENERATIVE,
    ThumbExample,
    VoteRecord,
    cap_shares,
    rater_trust,
)

PICK_WEIGHT = 2.0  # the highest trust among end-user signals: the rater named the intent
# A 👎 is taken as this many times likelier on a wrong prediction than on a right one: people
# also 👎 right answers that did not help them, so a 👎 alone is evidence, not a verdict.
DOWN_LIKELIHOOD_RATIO = 3.0

SayKind = Literal["thumb", "unhelpful", "other", "pick"]


@dataclass(frozen=True)
class CorrectionRecord:
    """A live correction joined with the interaction it is about."""

    interaction_id: str
    text: str
    intent: str  # what the serving model predicted
    confidence: float
    rater: str
    kind: str  # intent | unhelpful | other (``thumbloop.store.schema.CORRECTION_KINDS``)
    label: str | None  # the picked intent, for kind intent
    at: datetime
    strategy: str = "template"


@dataclass(frozen=True)
class Say:
    """One rater's say on one message's predicted intent: ``vote.value`` is +1 (right) or -1
    (wrong); a pick also names the right ``label``."""

    vote: VoteRecord
    kind: SayKind
    label: str | None = None


def doubt(confidence: float, raters_down: int) -> float:
    """How likely the prediction is wrong after ``raters_down`` distinct raters said so, taking
    the model's confidence as the prior and each 👎 as ``DOWN_LIKELIHOOD_RATIO`` evidence:
    0.81 and one 👎 → 0.42; 0.81 and three → 0.86; 0.3 and one → 0.88."""
    c = min(max(confidence, 0.0), 1.0)
    odds = (1 - c) * DOWN_LIKELIHOOD_RATIO ** max(raters_down, 1)
    return odds / (odds + c) if odds + c > 0 else 1.0


def _as_vote(c: CorrectionRecord, value: int) -> VoteRecord:
    return VoteRecord(
        c.interaction_id, c.text, c.intent, c.confidence, c.rater, value, c.at, c.strategy
    )


def says_of(
    votes: Sequence[VoteRecord],
    corrections: Sequence[CorrectionRecord],
    no_belief: frozenset[str] = frozenset(),
) -> list[Say]:
    """Each (message, rater)'s say: their correction where they made one (it explains or replaces
    their vote), else their vote. "Something else" under a reply that asked to clarify (it
    answered ``no_belief``: out of scope) only says none of the offered intents was meant, which
    may well mean out of scope: the rater's vote stands alone there."""
    corrections = [c for c in corrections if not (c.kind == "other" and c.intent in no_belief)]
    explained = {(c.interaction_id, c.rater) for c in corrections}
    says = [Say(v, "thumb") for v in votes if (v.interaction_id, v.rater) not in explained]
    vote_of = {(v.interaction_id, v.rater): v for v in votes}
    for c in corrections:
        vote = vote_of.get((c.interaction_id, c.rater))
        at = max(c.at, vote.at) if vote else c.at
        base = replace(_as_vote(c, 1), at=at)
        if c.kind == "intent" and c.label:
            right = c.label == c.intent
            says.append(Say(replace(base, value=1 if right else -1), "pick", c.label))
        elif c.kind == "unhelpful":
            says.append(Say(base, "unhelpful"))
        elif c.kind == "other":
            says.append(Say(replace(base, value=-1), "other"))
    return says


def build_examples(
    votes: Sequence[VoteRecord],
    max_share: float,
    skip_intents: frozenset[str] = frozenset(),
    no_belief: frozenset[str] = frozenset(),
    corrections: Sequence[CorrectionRecord] = (),
) -> list[ThumbExample]:
    """Intent examples from votes and follow-ups (see the module doc): per message, the weighted
    consensus on its predicted intent, and a positive example per picked label. ``no_belief``
    intents (out of scope: low confidence is why they were predicted) are not discounted by
    :func:`doubt`; ``skip_intents`` give no consensus example (picks on them still count)."""
    says = _keyed(says_of(votes, corrections, no_belief))
    trust = rater_trust([s.vote for s in says], no_belief)
    total: dict[str, float] = defaultdict(float)
    for s in says:
        total[s.vote.rater] += trust[s.vote.rater] * (PICK_WEIGHT if s.kind == "pick" else 1.0)
    capped = cap_shares(total, max_share)
    scale = {r: (capped[r] / t if t > 0 else 0.0) for r, t in total.items()}
    by_item: dict[str, list[Say]] = defaultdict(list)
    for s in says:
        by_item[s.vote.interaction_id].append(s)
    out: list[ThumbExample] = []
    for item in by_item.values():
        first = item[0].vote
        weight = {r: trust[r] * scale[r] for r in {s.vote.rater for s in item}}
        out += _picks(item, weight)
        if first.intent in skip_intents:
            continue
        down = len({s.vote.rater for s in item if s.vote.value < 0})
        d = 1.0 if first.intent in no_belief else doubt(first.confidence, down)
        full = score = 0.0
        for s in item:
            if s.kind == "pick" and s.label != first.intent:
                continue  # its label is its example; "not the prediction" follows from it
            w = s.vote.value * weight[s.vote.rater] * (PICK_WEIGHT if s.kind == "pick" else 1)
            full += w
            score += w * (d if s.kind == "thumb" and s.vote.value < 0 else 1.0)
        if abs(score) < 1e-6:
            continue
        if score < 0 and first.strategy == GENERATIVE and not any(s.kind == "other" for s in item):
            continue  # a bare 👎 on a generated reply may be about the wording only
        discount = score / full if full * score > 0 else 1.0
        out.append(
            ThumbExample(
                first.interaction_id,
                first.text,
                first.intent,
                1 if score > 0 else -1,
                abs(score),
                max(s.vote.at for s in item),
                _signal(item, score),
                min(1.0, discount),
            )
        )
    return out


def _keyed(says: list[Say]) -> list[Say]:
    # trust compares raters by message: order says by message so output order is stable
    return sorted(says, key=lambda s: (s.vote.interaction_id, s.vote.rater))


def _picks(item: list[Say], weight: dict[str, float]) -> list[ThumbExample]:
    by_label: dict[str, list[Say]] = defaultdict(list)
    for s in item:
        if s.kind == "pick" and s.label and s.label != s.vote.intent:
            by_label[s.label].append(s)
    first = item[0].vote
    return [
        ThumbExample(
            first.interaction_id,
            first.text,
            label,
            1,
            PICK_WEIGHT * sum(weight[s.vote.rater] for s in picked),
            max(s.vote.at for s in picked),
            "pick",
        )
        for label, picked in sorted(by_label.items())
        if sum(weight[s.vote.rater] for s in picked) > 1e-6
    ]


def _signal(item: list[Say], score: float) -> str:
    if score < 0 and any(s.kind == "other" for s in item):
        return "other"
    if score > 0 and any(s.kind == "pick" for s in item):
        return "pick"  # a rater picked the very intent that was predicted
    return "thumb"


def signal_stats(
    corrections: Sequence[CorrectionRecord], train: Sequence[ThumbExample]
) -> dict[str, float]:
    """The run's metrics: live follow-ups by kind, and the examples trained on by signal."""
    out = {f"corrections_{k}": 0.0 for k in ("intent", "unhelpful", "other")}
    for c in corrections:
        out[f"corrections_{c.kind}"] = out.get(f"corrections_{c.kind}", 0.0) + 1
    out["pick_examples"] = float(sum(e.signal == "pick" for e in train))
    out["discounted_down_examples"] = float(sum(e.discount < 1 for e in train))
    return out
