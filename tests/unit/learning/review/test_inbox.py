"""The inbox's reads on a real (SQLite) database: which messages need a look, grouping,
filters, order, and that forgotten or blanked messages leave every view."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import Engine, update

from learning.review.filters import Filters
from learning.review.inbox import group_members, groups_page, model_versions
from learning.review.index import sync
from tests.unit.learning.review.seed import T0, Msg, complaints, fresh_db, store, user
from thumbloop.store.db import session_scope
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import InteractionRow

LOW = 0.5


def _seeded(tmp_path: Path) -> Engine:
    _, engine = fresh_db(tmp_path)
    store(
        engine,
        [
            *complaints(40),
            Msg("what is the exchange rate", intent="exchange_rate", confidence=0.3, minutes=90),
            Msg("what IS the exchange rate?", intent="exchange_rate", confidence=0.4, minutes=91),
            Msg(
                "bla bla",
                intent="out_of_scope",
                confidence=0.2,
                response_id="oos-1+clarify:card_arrival|change_pin",
                platform="slack",
                model="thumbloop/2",
                minutes=200,
            ),
            Msg("where is my card", confidence=0.97, votes=[1]),  # fine: not listed
            Msg("where is my card now", confidence=0.97, votes=[1, -1], raw_user="zed"),
        ],
    )
    assert sync(engine) == (45, 0, 0)
    assert sync(engine) == (0, 0, 0)  # indexed once
    return engine


def test_copies_are_one_group_with_counts_signals_and_votes(tmp_path: Path) -> None:
    engine = _seeded(tmp_path)
    page = groups_page(engine, Filters(), LOW)
    assert [g.count for g in page.groups] == [40, 2, 1, 1]
    top = page.groups[0]
    assert top.intent == "card_arrival"
    assert round(top.confidence["card_arrival"], 2) == 0.62
    assert (top.downvoted, top.down, top.up, top.users) == (40, 40, 0, 40)
    assert top.text.startswith("My card 40")  # the newest member, stored as sent
    assert dict(top.models) == {"thumbloop/1": 40}
    assert not page.has_next


def test_signals_and_filters(tmp_path: Path) -> None:
    engine = _seeded(tmp_path)

    def texts(**kw: object) -> list[str]:
        return [g.text for g in groups_page(engine, Filters(**kw), LOW).groups]  # type: ignore[arg-type]

    assert texts(signal="unsure") == ["bla bla"]
    unsure = groups_page(engine, Filters(signal="unsure"), LOW).groups[0]
    assert unsure.offered == ["card_arrival", "change_pin"]
    assert len(texts(signal="downvoted")) == 2  # the complaints and the split vote
    assert texts(signal="low_confidence") == ["what IS the exchange rate?", "bla bla"]
    assert texts(intent="exchange_rate") == ["what IS the exchange rate?"]
    assert texts(platform="slack") == texts(model="thumbloop/2") == ["bla bla"]
    assert texts(since=date(2026, 3, 3)) == []
    assert len(texts(until=date(2026, 3, 2))) == 4
    # most recent first: the clarified message came last
    assert texts(sort="recent")[0] == "bla bla"
    assert model_versions(engine) == ["thumbloop/2", "thumbloop/1"]


def test_a_group_lists_its_messages_with_hashed_users_only(tmp_path: Path) -> None:
    engine = _seeded(tmp_path)
    key = groups_page(engine, Filters(), LOW).groups[0].key
    group, members = group_members(engine, key, Filters(), LOW, limit=10)
    assert group is not None and group.count == 40
    assert len(members) == 10
    assert members[0].text == "My card 4039 was charged twice!"  # newest first
    assert members[0].user_hash == user(39)
    assert members[0].down == 1
    assert group_members(engine, "0" * 32, Filters(), LOW) == (None, [])


def test_forgotten_and_blanked_messages_leave_the_inbox(tmp_path: Path) -> None:
    engine = _seeded(tmp_path)

    def counts() -> list[int]:
        return [g.count for g in groups_page(engine, Filters(), LOW).groups]

    with session_scope(engine) as s:
        forget_user(s, user("zed"))  # wrote "where is my card now"
        forget_user(s, user(0))  # sent one of the complaints
    # at once, before the next sync: the forget's tombstone leaves them out
    assert counts() == [39, 2, 1]
    with session_scope(engine) as s:  # retention blanks the exchange-rate messages
        s.execute(
            update(InteractionRow)
            .where(InteractionRow.intent == "exchange_rate")
            .values(text=None, reply_text=None)
        )
    assert sync(engine) == (0, 2, 2)
    assert counts() == [39, 1]
    # the user writes again after the forget: the new message is listed
    later = int((datetime.now(UTC) - T0).total_seconds() // 60) + 5
    store(engine, [Msg("my card 5 was charged twice", confidence=0.2, raw_user=0, minutes=later)])
    sync(engine)
    assert counts() == [40, 1]


def test_pages(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    store(engine, [Msg(f"question number {chr(97 + k)}", confidence=0.1) for k in range(26)])
    store(
        engine,
        [
            Msg(f"other question {chr(97 + k)} {chr(97 + j)}", confidence=0.1)
            for k in range(26)
            for j in range(2)
        ],
    )
    sync(engine)
    first = groups_page(engine, Filters(), LOW)
    second = groups_page(engine, Filters(page=2), LOW)
    assert len(first.groups) == 50 and first.has_next
    assert len(second.groups) == 28 and not second.has_next
    assert not {g.key for g in first.groups} & {g.key for g in second.groups}


def test_messages_users_corrected_are_listed_with_their_picks(tmp_path: Path) -> None:
    _, engine = fresh_db(tmp_path)
    sure = 0.95  # confident and not downvoted: only a correction lists them
    store(
        engine,
        [
            *[
                Msg(
                    f"my card {k} was charged twice",
                    votes=[-1, -1],
                    corrections=[("intent", "transaction_charged_twice"), ("other", None)],
                    raw_user=k,
                    minutes=k,
                )
                for k in range(3)
            ],
            Msg(
                "my card 9 was charged twice",
                corrections=[("intent", "card_payment_fee_charged")],
                minutes=9,
                confidence=sure,
            ),
            Msg("how do I top up", corrections=[("other", None)], minutes=20, confidence=sure),
            # withdrawn, or "the answer didn't help": no doubt left about the intent
            Msg(
                "top up limit", corrections=[("other", None), ("withdrawn", None)], confidence=sure
            ),
            Msg("top up fees", corrections=[("unhelpful", None)], confidence=sure),
        ],
    )
    sync(engine)
    page = groups_page(engine, Filters(signal="corrected"), LOW)
    assert [(g.text, g.count, g.corrected) for g in page.groups] == [
        ("my card 9 was charged twice", 4, 4),
        ("how do I top up", 1, 1),
    ]
    twice = page.groups[0]
    assert twice.picked == {"transaction_charged_twice": 3, "card_payment_fee_charged": 1}
    assert (twice.other, twice.downvoted, twice.unhelpful) == (3, 3, 0)
    listed = [g.text for g in groups_page(engine, Filters(), LOW).groups]
    assert "top up limit" not in listed and "top up fees" not in listed
    assert "how do I top up" in listed  # "any" includes the corrected

    group, members = group_members(engine, twice.key, Filters(), LOW)
    assert group is not None
    assert members[0].picked == {"card_payment_fee_charged": 1}
    assert [m.other for m in members] == [0, 1, 1, 1]
    engine.dispose()
