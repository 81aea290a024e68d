"""Votes and follow-ups read for what each says about the predicted intent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from learning.retrain.classifier import intent_examples
from learning.retrain.signals import (
    PICK_WEIGHT,
    CorrectionRecord,
    build_examples,
    doubt,
    signal_stats,
)
from learning.retrain.thumbs import VoteRecord
from thumbloop.settings import Settings

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OOS = frozenset({"out_of_scope"})


def vote(iid: str, rater: str, value: int, conf: float = 0.5, intent: str = "a") -> VoteRecord:
    return VoteRecord(iid, f"text {iid}", intent, conf, rater, value, T0)


def fix(
    iid: str,
    rater: str,
    kind: str,
    label: str | None = None,
    conf: float = 0.5,
    intent: str = "a",
) -> CorrectionRecord:
    return CorrectionRecord(
        iid, f"text {iid}", intent, conf, rater, kind, label, T0 + timedelta(seconds=5)
    )


def by_key(examples):  # type: ignore[no-untyped-def]
    return {(e.interaction_id, e.label, e.sign): e for e in examples}


def test_doubt_grows_with_the_models_unsureness_and_with_agreeing_raters() -> None:
    assert doubt(0.81, 1) == pytest.approx(0.4130, abs=1e-3)
    assert doubt(0.95, 1) < doubt(0.81, 1) < doubt(0.3, 1)
    assert doubt(0.81, 1) < doubt(0.81, 2) < doubt(0.81, 3)
    assert doubt(0.3, 1) > 0.85 and doubt(0.0, 1) == 1.0


def test_one_bare_down_on_a_confident_prediction_is_a_weak_complementary_label() -> None:
    confident = build_examples([vote("m", "r1", -1, conf=0.81)], max_share=1.0)
    unsure = build_examples([vote("m", "r1", -1, conf=0.3)], max_share=1.0)
    (c,), (u,) = confident, unsure
    assert c.sign == u.sign == -1 and c.signal == "thumb"
    assert c.discount == pytest.approx(doubt(0.81, 1)) and u.discount == pytest.approx(
        doubt(0.3, 1)
    )
    assert u.weight > 2 * c.weight


def test_distinct_raters_agreeing_strengthen_a_down() -> None:
    one = build_examples([vote("m", "r1", -1, conf=0.81)], max_share=1.0)
    three = build_examples([vote("m", f"r{i}", -1, conf=0.81) for i in range(3)], max_share=1.0)
    assert three[0].weight > 3 * one[0].weight  # three votes, each less discounted


def test_out_of_scope_predictions_are_not_discounted() -> None:
    (e,) = build_examples(
        [vote("m", "r1", -1, conf=0.9, intent="out_of_scope")], 1.0, no_belief=OOS
    )
    assert e.weight == pytest.approx(1.0) and e.discount == 1.0


def test_a_pick_is_a_full_label_that_replaces_the_raters_down() -> None:
    votes = [vote("m", "r1", -1, conf=0.6)]  # neither confident nor unsure: trust stays 1
    got = build_examples(votes, 1.0, corrections=[fix("m", "r1", "intent", "b", conf=0.6)])
    assert [(e.label, e.sign, e.signal) for e in got] == [("b", 1, "pick")]
    assert got[0].weight == pytest.approx(PICK_WEIGHT)  # above a 👍's full weight of 1


def test_a_pick_on_a_reply_that_asked_to_clarify_labels_without_a_vote() -> None:
    pick = fix("m", "r1", "intent", "b", conf=0.2, intent="out_of_scope")
    got = build_examples([], 1.0, skip_intents=OOS, no_belief=OOS, corrections=[pick])
    assert [(e.label, e.sign) for e in got] == [("b", 1)]


def test_unhelpful_takes_the_down_off_the_intent_and_confirms_it() -> None:
    votes = [vote("m", "r1", -1, conf=0.81)]
    (e,) = build_examples(votes, 1.0, corrections=[fix("m", "r1", "unhelpful", conf=0.81)])
    assert (e.label, e.sign, e.weight) == ("a", 1, pytest.approx(1.0))


def test_something_else_confirms_the_down_undiscounted() -> None:
    votes = [vote("m", "r1", -1, conf=0.6)]
    (e,) = build_examples(votes, 1.0, corrections=[fix("m", "r1", "other", conf=0.6)])
    assert (e.label, e.sign, e.signal, e.discount) == ("a", -1, "other", 1.0)
    assert e.weight == pytest.approx(1.0)


def test_something_else_under_a_clarifying_reply_leaves_the_vote_alone() -> None:
    # "none of these intents" may well mean out of scope: it does not say the reply was wrong
    votes = [vote("m", "r1", 1, conf=0.2, intent="out_of_scope")]
    other = fix("m", "r1", "other", conf=0.2, intent="out_of_scope")
    (e,) = build_examples(votes, 1.0, no_belief=OOS, corrections=[other])
    assert (e.label, e.sign, e.signal) == ("out_of_scope", 1, "thumb")


def test_other_raters_thumbs_still_count_beside_a_pick() -> None:
    votes = [vote("m", "r1", -1, conf=0.5), vote("m", "r2", -1, conf=0.5)]
    got = by_key(build_examples(votes, 1.0, corrections=[fix("m", "r1", "intent", "b")]))
    assert set(got) == {("m", "b", 1), ("m", "a", -1)}
    assert got[("m", "a", -1)].weight == pytest.approx(doubt(0.5, 2))  # r1's pick agrees


def test_picks_count_against_the_rater_cap() -> None:
    corrections = [fix(f"p{i}", "heavy", "intent", "b") for i in range(50)]
    votes = [vote(f"v{i}", f"r{i}", 1, conf=0.9) for i in range(20)]
    got = build_examples(votes, max_share=0.1, corrections=corrections)
    heavy = sum(e.weight for e in got if e.signal == "pick")
    assert heavy <= 0.1 * sum(e.weight for e in got) + 1e-9


def test_intent_examples_skip_picks_the_model_does_not_know(tmp_path: Path) -> None:
    corrections = [fix("m", "r1", "intent", "retired"), fix("n", "r1", "intent", "b")]
    got = intent_examples([], ["a", "b"], None, Settings(home=tmp_path), corrections)
    assert [(e.interaction_id, e.label) for e in got] == [("n", "b")]
    stats = signal_stats(corrections, got)
    assert stats["corrections_intent"] == 2 and stats["pick_examples"] == 1
