"""Which follow-up choices a reply offers, and what a tapped choice means."""

from __future__ import annotations

import uuid

import pytest

from bots.common import followup as fu
from thumbloop.contracts import IntentResult, Prediction, RankedIntent, Reply, SentimentResult


def prediction(ranking: list[tuple[str, float]], response_id: str) -> Prediction:
    top, confidence = ranking[0]
    return Prediction(
        intent=IntentResult(
            name=top,
            confidence=confidence,
            ranking=[RankedIntent(name=n, confidence=c) for n, c in ranking],
        ),
        sentiment=SentimentResult(label="negative", score=0.7),
        reply=Reply(text="…", response_id=response_id),
        model_version="thumbloop/1",
        latency_ms=1.0,
    )


def test_after_a_downvote_the_plausible_other_intents_are_offered_never_the_top_or_oos() -> None:
    p = prediction(
        [("charged_twice", 0.6), ("out_of_scope", 0.2), ("pending", 0.15), ("refund", 0.049)],
        "charged_twice_1",
    )
    plan = fu.plan(p, "conv")
    assert plan.intents == ("pending",)  # refund is under the 5 % floor
    assert plan.unhelpful and not plan.at_once
    assert plan.choices == ("0", "o", "h")
    assert [plan.label(c) for c in plan.choices] == ["pending", fu.SOMETHING_ELSE, fu.DIDNT_HELP]
    assert (plan.sentiment, plan.conversation, plan.question) == ("negative", "conv", fu.QUESTION)


def test_at_most_three_others_are_offered_after_a_downvote() -> None:
    p = prediction([("a", 0.25), ("b", 0.25), ("c", 0.25), ("d", 0.25)], "a_1")
    assert fu.plan(p).intents == ("b", "c", "d")


def test_a_clarifying_reply_offers_its_plausible_intents_at_once_top_included() -> None:
    p = prediction(
        [("refund", 0.4), ("pending", 0.3), ("out_of_scope", 0.2), ("fee", 0.04)],
        "oos_1+clarify:refund|pending",
    )
    plan = fu.plan(p)
    assert plan.at_once and plan.intents == ("refund", "pending")
    assert plan.choices == ("0", "1", "o"), "no 'didn't help': the reply answered no intent"
    assert plan.question == fu.CLARIFY_QUESTION


def test_a_reply_confident_it_is_out_of_scope_offers_nothing_at_once() -> None:
    p = prediction([("out_of_scope", 0.96), ("refund", 0.03)], "oos_1+clarify:refund")
    plan = fu.plan(p)
    assert not plan.at_once and plan.intents == ()
    assert plan.choices == ("o", "h")  # after a 👎 there is still something to say


def test_a_choice_reads_as_a_pick_only_when_it_was_offered() -> None:
    plan = fu.FollowUp(("pending", "refund"), unhelpful=True)
    assert fu.read_choice(plan, "1") == fu.Pick("intent", "refund")
    assert fu.read_choice(plan, "o") == fu.Pick("other")
    assert fu.read_choice(plan, "h") == fu.Pick("unhelpful")
    assert fu.read_choice(plan, "2") is None
    assert fu.read_choice(fu.FollowUp(("x",), unhelpful=False, at_once=True), "h") is None


def test_a_pick_becomes_a_correction_with_the_label_only_for_an_intent() -> None:
    iid, rater = uuid.uuid4(), "ab" * 16
    made = fu.correction(fu.Pick("intent", "refund"), iid, rater, "slack")
    assert (made.kind, made.label, made.interaction_id, made.rater) == (
        "intent",
        "refund",
        iid,
        rater,
    )
    assert fu.correction(fu.Pick("unhelpful"), iid, rater, "slack").label is None
    assert fu.thanks(fu.Pick("intent", "card_arrival")).endswith("about card arrival.")


def test_a_follow_up_survives_its_json_and_refuses_too_many_intents() -> None:
    plan = fu.FollowUp(("a", "b"), False, True, "positive", "slack:c:1")
    assert fu.FollowUp.from_json(plan.to_json()) == plan
    with pytest.raises(ValueError):
        fu.FollowUp(("a", "b", "c", "d", "e"), True)
