"""Reviewers' labels as the retrain's gold intent examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import update

from learning.retrain.reviewed import (
    reviewed_examples,
    reviewed_set,
    reviewed_stats,
    with_reviewed,
)
from learning.retrain.thumbs import ThumbExample, split_recent
from learning.review.actions import apply_action
from learning.review.filters import Filters
from learning.review.inbox import groups_page
from learning.review.index import sync
from tests.unit.learning.review.seed import T0, Msg, fresh_db, store, user
from thumbloop.store.db import session_scope
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import InteractionRow

INTENTS = ["card_arrival", "exchange_rate", "out_of_scope"]
T = datetime(2026, 1, 1, tzinfo=UTC)


def _ex(iid: str, label: str, sign: int, weight: float, minutes: int = 0) -> ThumbExample:
    return ThumbExample(iid, f"text {iid}", label, sign, weight, T + timedelta(minutes=minutes))


def test_reviewed_labels_replace_the_votes_on_their_messages_with_the_top_weight() -> None:
    votes = [_ex("a", "card_arrival", -1, 0.4), _ex("b", "exchange_rate", 1, 2.5)]
    gold = [_ex("a", "exchange_rate", 1, 1.0), _ex("c", "out_of_scope", 1, 1.0)]
    merged = with_reviewed(votes, gold)
    assert {(e.interaction_id, e.label, e.sign, e.weight) for e in merged} == {
        ("b", "exchange_rate", 1, 2.5),
        ("a", "exchange_rate", 1, 2.5),  # the reviewer's label, not the 👎
        ("c", "out_of_scope", 1, 2.5),
    }
    # without votes (or with weak ones only), a label weighs as one fully trusted vote
    assert {e.weight for e in with_reviewed([_ex("x", "card_arrival", 1, 0.2)], gold)} == {
        0.2,
        1.0,
    }


def test_the_run_counts_reviewed_examples_trained_on_and_held_back() -> None:
    gold = [_ex(str(k), "card_arrival", 1, 1.0, minutes=k) for k in range(10)]
    votes = [_ex(f"v{k}", "exchange_rate", 1, 1.0, minutes=k) for k in range(10)]
    train, held = split_recent(with_reviewed(votes, gold), 0.2)
    stats = reviewed_stats(gold, train, held)
    assert stats["reviewed_examples"] + stats["reviewed_examples_heldout"] == 10
    assert stats["reviewed_examples_heldout"] == 2  # they spread by time, as the votes do


def test_reviewed_examples_are_read_from_the_inbox_s_reviews(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    store(
        engine,
        [
            Msg("my card 1 was charged twice", confidence=0.3, raw_user="a", minutes=5),
            Msg("my card 2 was charged twice", confidence=0.3, raw_user="b", minutes=6),
            Msg("what is the rate", confidence=0.3, raw_user="c"),
            Msg("blah", confidence=0.3, raw_user="d"),
            Msg("old message", confidence=0.3, raw_user="e"),
            Msg("a retired intent", confidence=0.3, raw_user="f"),
        ],
    )
    sync(engine)
    groups = {g.text: g.key for g in groups_page(engine, Filters(), 0.5).groups}

    def act(text: str, label: str | None) -> None:
        apply_action(engine, "alice", groups[text], Filters(), 0.5, label, "out_of_scope")

    act("my card 2 was charged twice", "exchange_rate")
    act("what is the rate", "exchange_rate")
    act("blah", None)  # ignored: no label
    act("old message", "card_arrival")
    act("a retired intent", "top_up_limits")
    with session_scope(engine) as s:
        forget_user(s, user("a"))  # one of the relabelled group's senders
        s.execute(  # retention blanked this one
            update(InteractionRow).where(InteractionRow.text == "old message").values(text=None)
        )
    with session_scope(engine) as s:
        got = reviewed_examples(s, INTENTS)
    assert sorted((e.text, e.label, e.sign) for e in got) == [
        ("my card 2 was charged twice", "exchange_rate", 1),
        ("what is the rate", "exchange_rate", 1),
    ]
    assert min(e.at for e in got) == T0  # the message's time, not the review's


def test_the_reviewed_set_a_run_logs_names_each_review_and_no_text(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    store(
        engine,
        [
            Msg("my card 1 was charged twice", confidence=0.3, raw_user="a", minutes=1),
            Msg("my card 2 was charged twice", confidence=0.3, raw_user="b", minutes=2),
            Msg("where is my card", confidence=0.3, raw_user="c", minutes=3),
            Msg("what is the rate", confidence=0.3, raw_user="d", minutes=4),
        ],
    )
    sync(engine)
    groups = {g.text: g.key for g in groups_page(engine, Filters(), 0.5).groups}
    apply_action(
        engine,
        "alice",
        groups["my card 2 was charged twice"],
        Filters(),
        0.5,
        "exchange_rate",
        None,
    )
    apply_action(engine, "bob", groups["where is my card"], Filters(), 0.5, "card_arrival", None)
    with session_scope(engine) as s:
        gold = reviewed_examples(s, INTENTS)
    train, held = split_recent(with_reviewed([], gold), 0.34)
    got = reviewed_set(engine, train, held)
    assert [(r.label, r.action, r.reviewer, r.heldout) for r in got.train] == [
        ("exchange_rate", "relabel", "alice", False),
        ("exchange_rate", "relabel", "alice", False),
    ]
    assert [(r.predicted, r.label, r.action, r.reviewer) for r in got.held] == [
        ("card_arrival", "card_arrival", "confirm", "bob")
    ]
    logged = got.artifact()["reviewed_set.json"]
    assert (logged["train"], logged["heldout"]) == (2, 1)
    assert logged["actions"] == {"relabel": 2, "confirm": 1}
    assert "charged" not in str(logged)  # ids and labels, never the messages
    assert [name for _, name in got.inputs()] == ["reviewed_train", "reviewed_heldout"]
    # a vote example left on a reviewed message (its label unknown to the model) is no review
    vote = ThumbExample(got.train[0].interaction_id, "x", "card_arrival", -1, 1.0, T)
    assert reviewed_set(engine, [vote], []).train == []
