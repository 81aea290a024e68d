"""Reviewers' actions: one action covers the group the reviewer saw, is logged with the
reviewer and time, and takes the group out of the inbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from learning.review.actions import ActionError, apply_action, recent_labels, resolve
from learning.review.filters import Filters
from learning.review.inbox import groups_page
from learning.review.index import sync
from tests.unit.learning.review.seed import Msg, complaints, fresh_db, store
from thumbloop.store.db import session_scope
from thumbloop.store.schema import ReviewActionRow, ReviewedInteractionRow

LOW = 0.5
INTENTS = ["card_arrival", "card_payment_fee_charged", "exchange_rate", "out_of_scope"]


def test_resolve_checks_labels_against_the_domain() -> None:
    assert resolve("label", " exchange_rate ", INTENTS, "out_of_scope") == "exchange_rate"
    assert resolve("out_of_scope", "", INTENTS, "out_of_scope") == "out_of_scope"
    assert resolve("ignore", "whatever", INTENTS, "out_of_scope") is None
    with pytest.raises(ActionError, match="unknown intent"):
        resolve("label", "made_up", INTENTS, "out_of_scope")
    with pytest.raises(ActionError):
        resolve("delete", "", INTENTS, "out_of_scope")
    with pytest.raises(ActionError):
        resolve("out_of_scope", "", INTENTS, None)


def test_relabelling_a_group_stores_every_message_and_logs_one_action(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    ids = store(engine, complaints(40))
    # the same complaint seen on another platform: filtered out, so not covered
    other = store(engine, [Msg("my card 1 was charged twice", platform="slack", votes=[-1])])
    sync(engine)
    f = Filters(platform="telegram")
    key = groups_page(engine, f, LOW).groups[0].key
    done = apply_action(engine, "alice", key, f, LOW, "card_payment_fee_charged", "out_of_scope")
    assert (done.action, done.label, done.count) == ("relabel", "card_payment_fee_charged", 40)
    with session_scope(engine) as s:
        log = s.scalars(select(ReviewActionRow)).one()
        assert (log.reviewer, log.action, log.count) == ("alice", "relabel", 40)
        assert sorted(log.interaction_ids) == sorted(ids)
        assert log.at is not None
        reviewed = {r.interaction_id: r for r in s.scalars(select(ReviewedInteractionRow))}
    assert set(reviewed) == set(ids)
    assert {(r.label, r.action, r.reviewer) for r in reviewed.values()} == {
        ("card_payment_fee_charged", "relabel", "alice")
    }
    # the group left the inbox; the slack copy is still there
    left = groups_page(engine, Filters(), LOW).groups
    assert [g.count for g in left] == [1] and left[0].platforms == {"slack": 1}
    assert other[0] not in reviewed
    # the same action again finds nothing left and logs nothing
    again = apply_action(engine, "bob", key, f, LOW, "card_arrival", "out_of_scope")
    assert again.count == 0
    with session_scope(engine) as s:
        assert len(s.scalars(select(ReviewActionRow)).all()) == 1


def test_each_message_records_whether_the_label_confirmed_its_prediction(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    store(
        engine,
        [
            Msg("top up failed", intent="top_up_failed", confidence=0.4),
            Msg("top up failed!", intent="top_up_reverted", confidence=0.4),
        ],
    )
    sync(engine)
    key = groups_page(engine, Filters(), LOW).groups[0].key
    done = apply_action(engine, "alice", key, Filters(), LOW, "top_up_failed", "out_of_scope")
    assert done.action == "relabel"  # not every message was predicted so
    with session_scope(engine) as s:
        kinds = sorted(r.action for r in s.scalars(select(ReviewedInteractionRow)))
    assert kinds == ["confirm", "relabel"]


def test_out_of_scope_ignore_and_recent_labels(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    store(engine, [Msg(f"message {c}", confidence=0.1) for c in "abc"])
    sync(engine)
    keys = [g.key for g in groups_page(engine, Filters(), LOW).groups]
    assert apply_action(engine, "al", keys[0], Filters(), LOW, "out_of_scope", "out_of_scope")
    ignored = apply_action(engine, "al", keys[1], Filters(), LOW, None, "out_of_scope")
    assert (ignored.action, ignored.label) == ("ignore", None)
    apply_action(engine, "al", keys[2], Filters(), LOW, "exchange_rate", "out_of_scope")
    assert recent_labels(engine, "al") == ["exchange_rate", "out_of_scope"]
    assert recent_labels(engine, "someone else") == []
    assert groups_page(engine, Filters(), LOW).groups == []
