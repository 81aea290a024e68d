"""The classifier's gate: golden accuracies within the tolerance, held-back votes not
significantly worse."""

from __future__ import annotations

from datetime import UTC, datetime

from learning.retrain.gate import decide, paired_votes, vote_agreement
from learning.retrain.thumbs import ThumbExample

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_vote_agreement_and_gate() -> None:
    ex = [
        ThumbExample("1", "t", "a", 1, 1.0, T0),
        ThumbExample("2", "t", "b", -1, 1.0, T0),
    ]
    assert vote_agreement(ex, ["a", "c"]) == 1.0
    assert vote_agreement(ex, ["c", "b"]) == 0.0
    champ = {
        "golden_intent_accuracy": 0.90,
        "golden_sentiment_accuracy": 0.75,
        "heldout_vote_agreement": 0.6,
    }
    ok = decide(
        champ, champ | {"golden_intent_accuracy": 0.897, "heldout_vote_agreement": 0.7}, 0.005
    )
    assert ok.passed
    worse = decide(champ, champ | {"golden_intent_accuracy": 0.89}, 0.005)
    assert not worse.passed and "golden_intent_accuracy" in worse.reasons[0]
    votes_worse = decide(champ, champ | {"heldout_vote_agreement": 0.5}, 0.005)
    assert not votes_worse.passed


def test_held_back_votes_fail_a_candidate_only_when_it_is_significantly_worse() -> None:
    held = [ThumbExample(str(i), "t", "a", 1, 1.0, T0) for i in range(300)]
    champ = ["a"] * 240 + ["b"] * 60  # agrees with 80 %
    # the candidate flips 3 votes one way and 2 the other: noise, not a worse model
    noisy = ["b"] * 3 + ["a"] * 237 + ["a"] * 2 + ["b"] * 58
    pv = paired_votes(held, champ, noisy)
    assert (pv.worse, pv.better) == (3.0, 2.0) and not pv.significantly_worse
    metrics = {"golden_intent_accuracy": 0.9, "golden_sentiment_accuracy": 0.8}
    a = vote_agreement(held, champ)
    b = vote_agreement(held, noisy)
    assert b < a
    assert decide(
        metrics | {"heldout_vote_agreement": a}, metrics | {"heldout_vote_agreement": b}, 0.005, pv
    ).passed
    # losing 20 votes while winning 2 is worse
    bad = ["b"] * 20 + ["a"] * 220 + ["a"] * 2 + ["b"] * 58
    pv = paired_votes(held, champ, bad)
    assert pv.significantly_worse
    verdict = decide(
        metrics | {"heldout_vote_agreement": a},
        metrics | {"heldout_vote_agreement": vote_agreement(held, bad)},
        0.005,
        pv,
    )
    assert not verdict.passed and "significantly worse" in verdict.reasons[0]
