"""Simulated raters: a 👍/👎 per reply, "the answer didn't help" on some right ones, and the
follow-up after a 👎.

A rater votes 👍 on a right answer and 👎 on a wrong one, flipped with probability ``noise``;
adversaries vote the opposite on purpose. Then ``unhelpful_rate`` of all 👎 are made to fall on
right answers whose 👍 it replaces: the user understood, the answer did not help. After a 👎
(and under every reply that asked to clarify, where the choices are shown at once) the rater
answers the follow-up with probability ``follow_up_rate``: the true intent when it is offered,
else "something else", and "the answer didn't help" when the intent was right; with probability
``noise`` another of the offered choices instead, and adversaries always another.

What is offered is the bots' rule (``bots/common/followup.py``), repeated here because learning
may not import the bots: after a 👎 up to three intents of the ranking other than the answered
one, each with at least ``PLAUSIBLE`` confidence and never out of scope, plus "something else"
and "the answer didn't help"; on a reply that asked to clarify, up to four plausible intents,
the top one included, plus "something else".
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

PLAUSIBLE = 0.05  # as bots.common.followup.PLAUSIBLE
AFTER_DOWNVOTE = 3  # as bots.common.followup.AFTER_DOWNVOTE
AT_ONCE = 4  # as thumbloop.contracts.RANKING_SIZE: a clarifying reply offers the whole ranking
OTHER, UNHELPFUL = "other", "unhelpful"


@dataclass(frozen=True)
class RaterPolicy:
    noise: float = 0.1
    adversaries: int = 0
    adversary_share: float = 0.2
    honest_raters: int = 50
    follow_up_rate: float = 0.5
    unhelpful_rate: float = 0.2


@dataclass(frozen=True)
class Rated:
    """One message's rating: who, the vote, and the follow-up answer if any (``OTHER``,
    ``UNHELPFUL`` or an intent)."""

    rater: str
    value: int
    follow_up: str | None = None
    unhelpful: bool = False  # a 👎 on a right answer that did not help


def offered(
    ranking: Sequence[tuple[str, float]], answered: str, out_of_scope: str | None
) -> tuple[list[str], bool]:
    """(intents offered, whether "the answer didn't help" is) for a reply that answered
    ``answered``; a reply that asked to clarify answered ``out_of_scope``."""
    plausible = [n for n, p in ranking if n != out_of_scope and p >= PLAUSIBLE]
    if out_of_scope is not None and answered == out_of_scope:
        return plausible[:AT_ONCE], False
    return [n for n in plausible if n != answered][:AFTER_DOWNVOTE], True


def vote(policy: RaterPolicy, rng: random.Random, right: bool) -> Rated:
    if policy.adversaries and rng.random() < policy.adversary_share:
        return Rated(f"adversary-{rng.randrange(policy.adversaries)}", -1 if right else 1)
    value = 1 if right else -1
    if rng.random() < policy.noise:
        value = -value
    return Rated(f"rater-{rng.randrange(policy.honest_raters)}", value)


def add_unhelpful(
    policy: RaterPolicy, rng: random.Random, rated: list[Rated], right: Sequence[bool]
) -> list[Rated]:
    """Turn honest 👍s on right answers into 👎s that "did not help", until those are
    ``unhelpful_rate`` of all 👎."""
    downs = sum(r.value < 0 for r in rated)
    share = policy.unhelpful_rate
    if share <= 0 or share >= 1:
        return rated
    wanted = round(downs * share / (1 - share))
    ups = [
        i
        for i, (r, ok) in enumerate(zip(rated, right, strict=True))
        if ok and r.value > 0 and r.rater.startswith("rater-")
    ]
    out = list(rated)
    for i in rng.sample(ups, min(wanted, len(ups))):
        out[i] = Rated(rated[i].rater, -1, unhelpful=True)
    return out


def answer(
    policy: RaterPolicy,
    rng: random.Random,
    rated: Rated,
    truth: str,
    ranking: Sequence[tuple[str, float]],
    answered: str,
    out_of_scope: str | None,
) -> Rated:
    """The follow-up ``rated``'s rater gives, if any (see the module doc)."""
    clarifying = out_of_scope is not None and answered == out_of_scope
    if not (rated.value < 0 or clarifying) or rng.random() >= policy.follow_up_rate:
        return rated
    intents, can_say_unhelpful = offered(ranking, answered, out_of_scope)
    choices = intents + [OTHER] + ([UNHELPFUL] if can_say_unhelpful else [])
    if truth == answered:
        right = UNHELPFUL if can_say_unhelpful else OTHER
    else:
        right = truth if truth in intents else OTHER
    wrong = [c for c in choices if c != right]
    lies = rated.rater.startswith("adversary-") or rng.random() < policy.noise
    pick = rng.choice(wrong) if lies and wrong else right
    return Rated(rated.rater, rated.value, pick, rated.unhelpful)
