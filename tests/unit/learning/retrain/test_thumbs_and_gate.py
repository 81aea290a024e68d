from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import torch
from torch import nn

from learning.retrain.gate import decide, paired_votes, vote_agreement
from learning.retrain.thumbs import (
    ThumbExample,
    VoteRecord,
    build_examples,
    cap_shares,
    rater_trust,
    reply_judgements,
    split_recent,
)
from learning.seed.batches import INTENT, Batch
from learning.seed.train import batch_loss

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
    assert intents == {"up": 1, "tmpl": -1}  # a 👎 on wording says nothing about the intent
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


def _batch(labels: list[int], signs: list[int]) -> Batch:
    n = len(labels)
    return Batch(
        INTENT,
        torch.zeros(n, 1, 4),
        torch.ones(n, 1),
        torch.tensor(labels),
        torch.ones(n),
        torch.tensor(signs, dtype=torch.float32),
    )


def test_complementary_loss_pushes_the_voted_down_class_down() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    loss = batch_loss(logits, _batch([0], [-1]), nn.CrossEntropyLoss(reduction="none"))
    loss.backward()
    assert logits.grad is not None
    assert logits.grad[0, 0] > 0  # gradient descent lowers class 0
    assert logits.grad[0, 1] < 0 and logits.grad[0, 2] < 0
    pos = torch.zeros(1, 3, requires_grad=True)
    batch_loss(pos, _batch([0], [1]), nn.CrossEntropyLoss(reduction="none")).backward()
    assert pos.grad is not None and pos.grad[0, 0] < 0


@pytest.mark.parametrize("p", [0.2, 0.9])
def test_complementary_loss_value(p: float) -> None:
    logit = torch.log(torch.tensor([[p, (1 - p) / 2, (1 - p) / 2]]))
    loss = batch_loss(logit, _batch([0], [-1]), nn.CrossEntropyLoss(reduction="none"))
    assert float(loss) == pytest.approx(-torch.log(torch.tensor(1 - p)).item(), rel=1e-4)


def test_distillation_loss_matches_the_teacher() -> None:
    b = _batch([0], [1])
    b.soft = torch.tensor([[0.7, 0.2, 0.1]])
    at_teacher = torch.log(torch.tensor([[0.7, 0.2, 0.1]]))
    elsewhere = torch.log(torch.tensor([[0.1, 0.2, 0.7]]))
    ce = nn.CrossEntropyLoss(reduction="none")
    assert float(batch_loss(at_teacher, b, ce)) < float(batch_loss(elsewhere, b, ce))


def test_thumbs_on_clarifying_replies_label_out_of_scope_unless_switched_off(
    tmp_path: Path,
) -> None:
    from learning.retrain.run import intent_examples
    from thumbloop.settings import Settings

    def on(iid: str, intent: str, value: int) -> VoteRecord:
        return VoteRecord(iid, f"text {iid}", intent, 0.2, f"r-{iid}", value, T0)

    votes = [
        on("a", "out_of_scope", 1),
        on("b", "out_of_scope", -1),
        on("c", "card_arrival", 1),
        on("d", "retired_intent", 1),  # not an intent of this model: never used
    ]
    intents = ["card_arrival", "out_of_scope"]
    got = intent_examples(votes, intents, "out_of_scope", Settings(home=tmp_path))
    assert {(e.interaction_id, e.label, e.sign) for e in got} == {
        ("a", "out_of_scope", 1),
        ("b", "out_of_scope", -1),
        ("c", "card_arrival", 1),
    }
    off = Settings(home=tmp_path, clarifying_votes=False)
    assert [e.interaction_id for e in intent_examples(votes, intents, "out_of_scope", off)] == ["c"]
