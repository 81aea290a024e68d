"""The classifier's gate: golden accuracies within the tolerance, held-back votes not
significantly worse."""

from __future__ import annotations

from datetime import UTC, datetime

from learning.retrain.gate import Flips, confirmed_flips, decide, paired_votes, vote_agreement
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


def test_flips_count_confident_answers_users_confirmed_that_the_candidate_changes() -> None:
    held = [
        ThumbExample("up", "t", "a", 1, 1.0, T0),  # 👍 on a confident answer: confirmed
        ThumbExample("pick", "t", "b", 1, 2.0, T0, "pick"),  # a pick of the champion's answer
        ThumbExample("unsure", "t", "a", 1, 1.0, T0),  # confirmed, but the champion was unsure
        ThumbExample("down", "t", "a", -1, 1.0, T0),  # a 👎: nothing confirmed
        ThumbExample("other", "t", "c", 1, 1.0, T0),  # users confirmed what it did not answer
    ]
    champion = ["a", "b", "a", "a", "a"]
    confidence = [0.9, 0.85, 0.5, 0.95, 0.95]
    assert confirmed_flips(held, champion, confidence, ["x"] * 5) == Flips(2, 2)
    assert confirmed_flips(held, champion, confidence, champion) == Flips(0, 2)


def test_a_candidate_that_flips_confirmed_answers_fails_the_gate() -> None:
    metrics = {"golden_intent_accuracy": 0.9, "golden_sentiment_accuracy": 0.8}
    assert Flips(0, 50).allowed == 0 and Flips(2, 250).allowed == 2  # 1 in 100, rounded down
    assert decide(metrics, metrics, 0.005, flips=Flips(0, 50)).passed
    assert decide(metrics, metrics, 0.005, flips=Flips(2, 250)).passed
    failed = decide(metrics, metrics, 0.005, flips=Flips(1, 50))
    assert not failed.passed and "1 of 50 confident answers users confirmed" in failed.reasons[0]
