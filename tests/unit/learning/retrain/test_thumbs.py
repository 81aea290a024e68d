"""From thumbs to training examples: rater trust, per-rater caps, consensus, the hold-out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from learning.retrain.signals import build_examples
from learning.retrain.thumbs import (
    ThumbExample,
    VoteRecord,
    cap_shares,
    rater_trust,
    reply_judgements,
    split_recent,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def vote(iid: str, rater: str, value: int, conf: float = 0.5, minute: int = 0) -> VoteRecord:
    return VoteRecord(
        iid, f"text {iid}", "card_arrival", conf, rater, value, T0 + timedelta(minutes=minute)
    )


def test_adversary_disagreeing_with_consensus_loses_trust() -> None:
    votes = []
    for i in range(20):
        votes += [vote(f"m{i}", "alice", 1), vote(f"m{i}", "bob", 1), vote(f"m{i}", "eve", -1)]
    trust = rater_trust(votes)
    assert trust["alice"] > 0.8 and trust["bob"] > 0.8
    assert trust["eve"] == 0.0


def test_lone_raters_are_judged_against_confident_model_beliefs() -> None:
    honest = [vote(f"h{i}", "honest", 1, conf=0.95) for i in range(30)]
    liar = [vote(f"l{i}", "liar", -1, conf=0.95) for i in range(30)]
    trust = rater_trust(honest + liar)
    assert trust["honest"] > 0.9 and trust["liar"] == 0.0


def test_clarifying_replies_hold_no_model_belief_to_judge_raters_by() -> None:
    def on_oos(iid: str, rater: str, value: int) -> VoteRecord:
        return VoteRecord(iid, f"text {iid}", "out_of_scope", 0.2, rater, value, T0)

    # low confidence is why a message was judged out of scope: a 👍 there is not a disagreement
    honest = [on_oos(f"h{i}", "honest", 1) for i in range(30)]
    contrarian = [on_oos(f"c{i}", "contrarian", -1) for i in range(30)]
    naive = rater_trust(honest + contrarian)
    assert naive["honest"] == 0.0 and naive["contrarian"] > 0.9  # what it used to conclude
    fair = rater_trust(honest + contrarian, no_belief=frozenset({"out_of_scope"}))
    assert fair["honest"] == fair["contrarian"] == 1.0  # no evidence either way: the prior


def test_cap_shares_limits_any_single_rater() -> None:
    capped = cap_shares({"big": 100.0, **{f"r{i}": 1.0 for i in range(30)}}, max_share=0.1)
    assert capped["big"] <= 0.1 * sum(capped.values()) + 1e-9
    assert capped["r0"] == 1.0


def test_build_examples_combines_raters_per_message() -> None:
    votes = [
        vote("a", "r1", 1, 0.9),
        vote("a", "r2", 1, 0.9),
        vote("b", "r1", -1, 0.1),
        vote("c", "r3", 1, 0.9),
    ]
    ex = {e.interaction_id: e for e in build_examples(votes, max_share=1.0)}
    assert ex["a"].sign == 1 and ex["a"].weight > ex["c"].weight
    assert ex["b"].sign == -1 and ex["b"].label == "card_arrival"
    assert not build_examples(votes, 1.0, skip_intents=frozenset({"card_arrival"}))


def _generated(iid: str, rater: str, value: int) -> VoteRecord:
    prompt = [{"role": "user", "content": f"text {iid}"}]
    return VoteRecord(
        iid,
        f"text {iid}",
        "card_arrival",
        0.9,
        rater,
        value,
        T0,
        "generative",
        f"reply {iid}",
        prompt,
    )


def test_downvoted_generated_reply_teaches_only_the_generator() -> None:
    votes = [
        _generated("up", "r1", 1),
        _generated("down", "r1", -1),
        vote("tmpl", "r2", -1, 0.1),
        _generated("tie", "r3", 1),
        _generated("tie", "r4", -1),
    ]
    intents = {e.interaction_id: e.sign for e in build_examples(votes, max_share=1.0)}
    # a 👎 on wording says nothing about the intent: the tie keeps the 👍's label
    assert intents == {"up": 1, "tmpl": -1, "tie": 1}
    judged = {j.interaction_id: j for j in reply_judgements(votes, max_share=1.0)}
    assert set(judged) == {"up", "down"}  # template replies and ties are not KTO data
    assert judged["up"].desirable and not judged["down"].desirable
    assert judged["down"].completion == "reply down"
    assert judged["down"].prompt == [{"role": "user", "content": "text down"}]


def test_split_recent_holds_back_the_newest() -> None:
    ex = [ThumbExample(str(i), "t", "x", 1, 1.0, T0 + timedelta(minutes=i)) for i in range(10)]
    train, held = split_recent(ex, 0.2)
    assert [e.interaction_id for e in held] == ["8", "9"]
    assert len(train) == 8
