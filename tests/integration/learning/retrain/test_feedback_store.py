"""The retrain's reads of follow-up corrections, on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from learning.retrain.feedback_store import correction_records, new_votes_since
from tests.integration.servers import fresh_postgres_db
from thumbloop.contracts import Correction, Interaction
from thumbloop.identity import hash_id
from thumbloop.store.db import (
    make_engine,
    session_scope,
    upgrade,
    upsert_correction,
    upsert_interaction,
    withdraw_correction,
)
from thumbloop.store.schema import InteractionRow

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/t.db"
        upgrade(url)
        yield url
        return
    with fresh_postgres_db() as url:
        upgrade(url)
        yield url


def _item(text: str) -> Interaction:
    return Interaction(
        interaction_id=uuid.uuid4(),
        platform="telegram",
        user=hash_id("k", "telegram", "ada"),
        conversation=hash_id("k", "telegram", "chat"),
        text=text,
        intent="card_arrival",
        intent_confidence=0.7,
        sentiment="neutral",
        response_id="card_arrival/1",
        reply_text="ok",
        model_version="m/1",
    )


def test_live_corrections_are_read_with_their_message_and_count_as_news(db_url: str) -> None:
    engine = make_engine(db_url)
    picked, withdrawn, redacted = _item("where is my card"), _item("my pin"), _item("gone")
    bob = hash_id("k", "telegram", "bob")

    def fix(item: Interaction, kind: str, label: str | None, at: datetime) -> Correction:
        return Correction(
            interaction_id=item.interaction_id,
            rater=bob,
            kind=kind,  # type: ignore[arg-type]
            label=label,
            platform="telegram",
            at=at,
        )

    since = datetime.now(UTC) - timedelta(seconds=1)
    with session_scope(engine) as s:
        for item in (picked, withdrawn, redacted):
            upsert_interaction(s, item)
        assert upsert_correction(s, fix(picked, "other", None, T0))
        assert upsert_correction(s, fix(picked, "intent", "change_pin", T0 + timedelta(1)))
        assert upsert_correction(s, fix(withdrawn, "unhelpful", None, T0))
        assert withdraw_correction(
            s, str(withdrawn.interaction_id), bob, "telegram", T0 + timedelta(1)
        )
        assert upsert_correction(s, fix(redacted, "other", None, T0))
        # retention blanked this message: nothing left to learn from
        s.execute(
            update(InteractionRow)
            .where(InteractionRow.interaction_id == str(redacted.interaction_id))
            .values(text=None)
        )
    with session_scope(engine) as s:
        got = correction_records(s)
        count, oldest = new_votes_since(s, since)
    engine.dispose()
    assert [(c.interaction_id, c.kind, c.label) for c in got] == [
        (str(picked.interaction_id), "intent", "change_pin")  # the one made last
    ]
    (c,) = got
    assert (c.text, c.intent, c.confidence, c.rater) == (
        "where is my card",
        "card_arrival",
        0.7,
        bob,
    )
    assert count == 2 and oldest is not None  # the live pick and the redacted message's "other"
