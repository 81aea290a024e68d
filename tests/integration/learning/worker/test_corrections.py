"""Corrections (what a rater said after a 👎) through the worker's tasks on real PostgreSQL:
stored once, the one made last wins, withdrawable, erased by /forget, malformed ones dropped."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from tests.integration.learning.worker.conftest import interaction, user
from thumbloop.contracts import Correction, Interaction
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import LIVE_CORRECTION, CorrectionRow, DroppedTaskRow
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_CORRECTION,
    RECORD_INTERACTION,
    WITHDRAW_CORRECTION,
    correction_payload,
    forget_payload,
    interaction_payload,
    withdraw_payload,
)

pytestmark = [pytest.mark.postgres]


def pick(
    item: Interaction, who: str, kind: str, label: str | None = None, at: datetime | None = None
) -> Correction:
    return Correction(
        interaction_id=item.interaction_id,
        rater=user(who),
        kind=kind,  # type: ignore[arg-type]
        label=label,
        platform="telegram",
        at=at or datetime.now(UTC),
    )


def rows(url: str) -> list[tuple[str, str, str | None]]:
    engine = make_engine(url)
    with session_scope(engine) as s:
        found = s.execute(
            select(CorrectionRow.rater, CorrectionRow.kind, CorrectionRow.label)
            .where(LIVE_CORRECTION)
            .order_by(CorrectionRow.rater)
        ).all()
    engine.dispose()
    return [tuple(r) for r in found]  # type: ignore[misc]


def test_the_correction_made_last_wins_whatever_the_delivery_order(
    pg_url: str, worker_tasks
) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(None)
    item = interaction("alice", "I was charged twice for the same coffee")
    t0 = datetime.now(UTC)
    first = pick(item, "bob", "intent", "card_payment_wrong_amount", t0)
    second = pick(item, "bob", "intent", "transaction_charged_twice", t0 + timedelta(seconds=5))
    assert run(RECORD_CORRECTION, correction_payload(second)) == "stored"
    # the older pick, redelivered after the newer one, changes nothing
    assert run(RECORD_CORRECTION, correction_payload(first)) == "stale"
    assert rows(pg_url) == [(user("bob"), "intent", "transaction_charged_twice")]
    # the same correction twice (a redelivery) is one row
    assert run(RECORD_CORRECTION, correction_payload(second)) == "stored"
    assert run(RECORD_CORRECTION, correction_payload(pick(item, "carol", "unhelpful"))) == "stored"
    assert sorted(rows(pg_url)) == sorted(
        [(user("bob"), "intent", "transaction_charged_twice"), (user("carol"), "unhelpful", None)]
    )


def test_withdrawal_removes_it_and_an_older_pick_delivered_later_stays_withdrawn(
    pg_url: str, worker_tasks
) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(None)
    item = interaction("alice", "my card has not arrived")
    t0 = datetime.now(UTC)
    made = pick(item, "bob", "other", at=t0)
    assert run(RECORD_CORRECTION, correction_payload(made)) == "stored"
    undo = withdraw_payload(str(item.interaction_id), user("bob"), "telegram", t0 + timedelta(1))
    assert run(WITHDRAW_CORRECTION, undo) == "withdrawn"
    assert rows(pg_url) == []
    assert run(RECORD_CORRECTION, correction_payload(made)) == "stale"
    assert rows(pg_url) == []
    # a change of mind after the withdrawal counts again
    again = pick(item, "bob", "unhelpful", at=t0 + timedelta(days=2))
    assert run(RECORD_CORRECTION, correction_payload(again)) == "stored"
    assert rows(pg_url) == [(user("bob"), "unhelpful", None)]


def test_forget_erases_the_users_corrections_and_those_of_their_messages(
    pg_url: str, worker_tasks, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(None)
    alices = interaction("alice", "where is my card")
    bobs = interaction("bob", "I lost my card")
    for item in (alices, bobs):
        assert run(RECORD_INTERACTION, interaction_payload(item)) == "stored"
    for made in (
        pick(alices, "carol", "intent", "card_arrival"),  # on alice's message
        pick(bobs, "alice", "intent", "lost_or_stolen_card"),  # by alice
        pick(bobs, "carol", "unhelpful"),  # neither: stays
    ):
        assert run(RECORD_CORRECTION, correction_payload(made)) == "stored"
    forgot_at = datetime.now(UTC)
    with caplog.at_level(logging.INFO, logger="learning.worker.tasks"):
        result = run(FORGET_USER, forget_payload(user("alice"), "telegram", forgot_at))
    assert result["corrections"] == 2
    assert "2 corrections" in caplog.text  # the operator's log says so too
    assert rows(pg_url) == [(user("carol"), "unhelpful", None)]
    late = pick(bobs, "alice", "other", at=forgot_at - timedelta(seconds=1))
    assert run(RECORD_CORRECTION, correction_payload(late)) == "forgotten"
    assert rows(pg_url) == [(user("carol"), "unhelpful", None)]


def test_a_malformed_correction_is_dropped_and_counted(pg_url: str, worker_tasks) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(None)
    payload = correction_payload(pick(interaction("a", "x"), "bob", "intent", "card_arrival"))
    payload["correction"]["label"] = None  # an intent pick without the intent
    assert run(RECORD_CORRECTION, payload) == "dropped"
    assert run(WITHDRAW_CORRECTION, {"interaction_id": "not a uuid", "rater": "x"}) == "dropped"
    engine = make_engine(pg_url)
    with session_scope(engine) as s:
        tasks = s.scalars(select(DroppedTaskRow.task)).all()
    engine.dispose()
    assert sorted(tasks) == [RECORD_CORRECTION, WITHDRAW_CORRECTION]
    assert rows(pg_url) == []
