"""Simulated raters: votes, "didn't help" 👎s on right answers, and follow-up answers."""

from __future__ import annotations

import random

from learning.simulate.raters import (
    OTHER,
    UNHELPFUL,
    Rated,
    RaterPolicy,
    add_unhelpful,
    answer,
    offered,
    vote,
)

RANKING = [("a", 0.6), ("b", 0.2), ("out_of_scope", 0.1), ("c", 0.06)]
QUIET = RaterPolicy(noise=0.0, follow_up_rate=1.0)


def test_the_offer_is_the_bots_rule() -> None:
    # after a 👎: the others of the ranking, plausible, never out of scope; "didn't help" too
    assert offered(RANKING, "a", "out_of_scope") == (["b", "c"], True)
    assert offered([("a", 0.9), ("b", 0.04)], "a", "out_of_scope") == ([], True)
    # a reply that asked to clarify offers the plausible ranking, top included, and no "didn't
    # help" (it answered nothing)
    assert offered(RANKING, "out_of_scope", "out_of_scope") == (["a", "b", "c"], False)


def test_a_follow_up_names_the_true_intent_when_offered_else_something_else() -> None:
    rng = random.Random(0)
    down = Rated("rater-1", -1)
    assert answer(QUIET, rng, down, "b", RANKING, "a", "out_of_scope").follow_up == "b"
    assert answer(QUIET, rng, down, "zzz", RANKING, "a", "out_of_scope").follow_up == OTHER
    right = answer(QUIET, rng, down, "a", RANKING, "a", "out_of_scope")
    assert right.follow_up == UNHELPFUL  # the topic was right
    up = Rated("rater-1", 1)
    assert answer(QUIET, rng, up, "a", RANKING, "a", "out_of_scope").follow_up is None
    # under a clarifying reply the choices are there at once, whatever the vote
    clar = answer(QUIET, rng, up, "b", RANKING, "out_of_scope", "out_of_scope")
    assert clar.follow_up == "b"


def test_follow_up_rate_and_noise() -> None:
    rng = random.Random(1)
    policy = RaterPolicy(noise=0.1, follow_up_rate=0.5)
    got = [
        answer(policy, rng, Rated("rater-1", -1), "b", RANKING, "a", "out_of_scope").follow_up
        for _ in range(4000)
    ]
    answered = [g for g in got if g is not None]
    assert 0.45 < len(answered) / len(got) < 0.55
    assert 0.85 < answered.count("b") / len(answered) < 0.95
    assert set(answered) == {"b", "c", OTHER, UNHELPFUL}
    liar = answer(QUIET, rng, Rated("adversary-0", -1), "b", RANKING, "a", "out_of_scope")
    assert liar.follow_up not in (None, "b")


def test_unhelpful_downs_fall_on_right_answers_at_the_asked_share() -> None:
    rng = random.Random(2)
    policy = RaterPolicy(noise=0.0, unhelpful_rate=0.2)
    right = [i % 5 != 0 for i in range(1000)]  # 200 wrong answers
    rated = add_unhelpful(policy, rng, [vote(policy, rng, ok) for ok in right], right)
    downs = [r for r in rated if r.value < 0]
    made = [i for i, r in enumerate(rated) if r.unhelpful]
    assert len(made) == 50 and len(made) / len(downs) == 0.2
    assert all(right[i] for i in made)
    none = RaterPolicy(noise=0.0, unhelpful_rate=0.0)
    fresh = [vote(none, rng, ok) for ok in right]
    assert add_unhelpful(none, rng, fresh, right) == fresh
