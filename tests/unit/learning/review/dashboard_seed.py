"""Four days of traffic across two model versions for the dashboard's tests (SQLite here,
PostgreSQL in tests/integration/learning/review/test_dashboard.py): interactions, votes, users'
corrections (one withdrawn, one "something else", one "didn't help") and a reviewer's relabel,
each stored through the real writers, and the numbers the dashboard must read from them."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine

from learning.review.actions import apply_action
from learning.review.dashboard import (
    CorrectedPair,
    DashboardFilters,
    IntentDownvotes,
    corrected_pairs,
    daily,
    downvoted_intents,
    first_answers,
)
from learning.review.filters import Filters
from learning.review.index import sync
from learning.review.redact import group_key
from tests.unit.learning.review.seed import Msg, store

DAY = 24 * 60
V1, V2 = "thumbloop/1", "thumbloop/2"
CLARIFY = "oos-1+clarify:card_arrival|change_pin"
RATE = "what is the exchange rate today"


def traffic() -> list[Msg]:
    return [
        # 2026-03-02, version 1
        Msg("where is my card", votes=[1, 1], raw_user="a"),
        Msg(
            "my card still hasn't arrived",
            confidence=0.8,
            votes=[-1],
            sentiment="negative",
            corrections=[("intent", "card_delivery_estimate")],
            raw_user="b",
            minutes=5,
        ),
        Msg("bla", intent="out_of_scope", confidence=0.3, response_id=CLARIFY, minutes=6),
        Msg(
            "change my pin",
            intent="change_pin",
            votes=[-1],
            sentiment="negative",
            corrections=[("other", None)],
            platform="slack",
            raw_user="d",
            minutes=7,
        ),
        # 2026-03-03, version 1
        Msg("is my card coming", votes=[1], raw_user="e", minutes=DAY),
        Msg(
            RATE,
            intent="exchange_rate",
            votes=[-1, -1],
            sentiment="negative",
            corrections=[("intent", "card_arrival"), ("intent", "card_arrival")],
            raw_user="f",
            minutes=DAY + 1,
        ),
        # 2026-03-04: version 2 first answers; version 1 still answers one message
        Msg("where's the card", votes=[1], raw_user="j", minutes=2 * DAY),
        Msg("card status", votes=[1, 1, 1], model=V2, raw_user="g", minutes=2 * DAY + 60),
        Msg("hmm", intent="out_of_scope", response_id=CLARIFY, model=V2, minutes=2 * DAY + 61),
        Msg(
            "exchange rate for euros",
            intent="exchange_rate",
            votes=[-1],
            corrections=[("unhelpful", None)],
            model=V2,
            raw_user="i",
            minutes=2 * DAY + 62,
        ),
        # 2026-03-05, version 2
        Msg("card?!", votes=[1], sentiment="negative", model=V2, raw_user="k", minutes=3 * DAY),
        Msg(
            "how much is a dollar",
            intent="exchange_rate",
            votes=[-1],
            corrections=[("intent", "change_pin"), ("withdrawn", None)],
            model=V2,
            raw_user="l",
            minutes=3 * DAY + 1,
        ),
    ]


def seed(engine: Engine) -> None:
    """The traffic, then a reviewer's actions: the exchange-rate complaint relabelled as
    card_arrival (a correction), the unsure "bla" marked out of scope (its own prediction: a
    confirmation, not a pair)."""
    store(engine, traffic())
    sync(engine)
    for text, label in ((RATE, "card_arrival"), ("bla", "out_of_scope")):
        done = apply_action(engine, "alice", group_key(text), Filters(), 0.5, label, "out_of_scope")
        assert done.count == 1


# (day, version): interactions, unsure, negative, 👍, 👎
DAILY = {
    ("2026-03-02", V1): (4, 1, 2, 2, 2),
    ("2026-03-03", V1): (2, 0, 1, 1, 2),
    ("2026-03-04", V1): (1, 0, 0, 1, 0),
    ("2026-03-04", V2): (3, 1, 0, 3, 1),
    ("2026-03-05", V2): (2, 0, 1, 1, 1),
}


def check(engine: Engine) -> None:
    """Every number of the dashboard on the seeded database, under a few filters."""
    rows = daily(engine, DashboardFilters())
    got = {
        (r.day, r.model_version): (r.interactions, r.unsure, r.negative, r.up, r.down) for r in rows
    }
    assert got == DAILY
    assert [(r.day, r.model_version) for r in rows] == sorted(DAILY)  # oldest first
    first = rows[0]
    assert (first.up_rate, first.unsure_share, first.negative_share) == (0.5, 0.25, 0.5)

    slack = daily(engine, DashboardFilters(platform="slack"))
    assert [(r.day, r.interactions, r.negative, r.up, r.down) for r in slack] == [
        ("2026-03-02", 1, 1, 0, 1)
    ]
    since = daily(engine, DashboardFilters(since=date(2026, 3, 4)))
    assert {(r.day, r.model_version) for r in since} == {k for k in DAILY if k[0] >= "2026-03-04"}
    until = daily(engine, DashboardFilters(until=date(2026, 3, 3)))  # inclusive
    assert {r.day for r in until} == {"2026-03-02", "2026-03-03"}

    assert downvoted_intents(engine, DashboardFilters()) == [
        IntentDownvotes("exchange_rate", V1, 2, 0),
        IntentDownvotes("exchange_rate", V2, 2, 0),
        IntentDownvotes("card_arrival", V1, 1, 4),
        IntentDownvotes("card_arrival", V2, 0, 4),
        IntentDownvotes("change_pin", V1, 1, 0),
    ]
    assert downvoted_intents(engine, DashboardFilters(platform="cli")) == []

    assert corrected_pairs(engine, DashboardFilters()) == [
        CorrectedPair("exchange_rate", "card_arrival", 1, 2),
        CorrectedPair("card_arrival", "card_delivery_estimate", 0, 1),
    ]
    assert corrected_pairs(engine, DashboardFilters(since=date(2026, 3, 3))) == [
        CorrectedPair("exchange_rate", "card_arrival", 1, 2)
    ]

    firsts = first_answers(engine)
    assert [(a.model_version, a.day) for a in firsts] == [(V1, "2026-03-02"), (V2, "2026-03-04")]
