"""Tombstones and retention at the storage level, and migration 0005 with redacted rows, on
the machine's PostgreSQL and on SQLite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from thumbloop.contracts import Interaction
from thumbloop.identity import hash_id
from thumbloop.store.db import downgrade, make_engine, session_scope, upgrade, upsert_interaction
from thumbloop.store.privacy import forget_user, forgotten_before, redact_older_than

pytestmark = [pytest.mark.postgres]


def _said(at: datetime) -> Interaction:
    return Interaction(
        interaction_id=uuid.uuid4(),
        platform="slack",
        user=hash_id("s", "slack", "U1"),
        conversation=hash_id("s", "slack", "C1"),
        text="where is my card?",
        intent="card_arrival",
        intent_confidence=0.9,
        sentiment="neutral",
        response_id="card_arrival/1",
        reply_text="On its way.",
        model_version="thumbloop/1",
        at=at,
    )


def test_a_tombstone_holds_against_older_tasks_and_never_moves_back(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    alice = hash_id("s", "slack", "U1")
    t0 = datetime(2026, 12, 1, 12, tzinfo=UTC)
    with session_scope(engine) as s:
        assert not forgotten_before(s, alice, t0)
        forget_user(s, alice, t0)
    with session_scope(engine) as s:
        forget_user(s, alice, t0 - timedelta(days=1))  # an older forget, delivered late
    with session_scope(engine) as s:
        assert forgotten_before(s, alice, t0 - timedelta(seconds=1))
        assert forgotten_before(s, alice, (t0 - timedelta(seconds=1)).replace(tzinfo=None))
        east = timezone(timedelta(hours=5))  # the same instant in another zone: as old
        assert forgotten_before(s, alice, (t0 - timedelta(seconds=1)).astimezone(east))
        assert not forgotten_before(s, alice, t0)  # made at or after the forget: a new message
        assert not forgotten_before(s, hash_id("s", "slack", "U2"), t0 - timedelta(days=9))
    engine.dispose()


def test_retention_cutoff_and_migration_0005_down_and_up(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    now = datetime.now(UTC)
    with session_scope(engine) as s:
        upsert_interaction(s, _said(now - timedelta(days=10)))
        upsert_interaction(s, _said(now - timedelta(days=2)))
    with session_scope(engine) as s:
        assert redact_older_than(s, now - timedelta(days=5)) == (1, 0)
    with engine.connect() as conn:
        texts = conn.execute(text("SELECT text FROM interactions ORDER BY created_at")).all()
    assert [t for (t,) in texts] == [None, "where is my card?"]
    downgrade(db_url, "0004")  # the older schema wants a text: the redacted one is empty
    with engine.connect() as conn:
        texts = conn.execute(text("SELECT text FROM interactions ORDER BY created_at")).all()
    assert [t for (t,) in texts] == ["", "where is my card?"]
    upgrade(db_url)
    engine.dispose()
