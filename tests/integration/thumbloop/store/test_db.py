"""Migrations and idempotent writes on the machine's PostgreSQL and on SQLite."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from learning.retrain.feedback_store import last_generator_training, new_votes_since, vote_records
from tests.integration.servers import fresh_postgres_db
from thumbloop.contracts import Interaction, Vote
from thumbloop.identity import hash_id
from thumbloop.store.db import (
    downgrade,
    live_vote,
    make_engine,
    session_scope,
    upgrade,
    upsert_interaction,
    upsert_vote,
    votes_for,
    withdraw_vote,
)
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import InteractionRow, TrainingRunRow

pytestmark = [pytest.mark.postgres]


def _interaction(user: str, iid: uuid.UUID | None = None) -> Interaction:
    return Interaction(
        interaction_id=iid or uuid.uuid4(),
        platform="telegram",
        user=user,
        conversation=hash_id("s", "telegram", "chat-1"),
        text="where is my card?",
        intent="card_arrival",
        intent_confidence=0.91,
        sentiment="neutral",
        response_id="card_arrival/1",
        reply_text="It is on its way.",
        model_version="thumbloop/1",
        message_ref="chat-1:77",
    )


def test_migrations_up_and_down(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    assert {"interactions", "votes", "training_runs", "alembic_version"} <= set(
        inspect(engine).get_table_names()
    )
    upgrade(db_url)  # idempotent
    downgrade(db_url, "base")
    assert "votes" not in inspect(engine).get_table_names()
    engine.dispose()


def test_votes_replace_and_interactions_are_idempotent(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    alice, bob = hash_id("s", "telegram", 1), hash_id("s", "telegram", 2)
    item = _interaction(alice)
    with session_scope(engine) as s:
        # the vote arrives before its interaction: kept, joined later by id
        upsert_vote(
            s, Vote(interaction_id=item.interaction_id, rater=bob, value=1, platform="telegram")
        )
    with session_scope(engine) as s:
        upsert_interaction(s, item)
        upsert_interaction(s, item)
        upsert_vote(
            s, Vote(interaction_id=item.interaction_id, rater=alice, value=1, platform="telegram")
        )
        upsert_vote(
            s, Vote(interaction_id=item.interaction_id, rater=alice, value=-1, platform="telegram")
        )
    with session_scope(engine) as s:
        assert s.query(InteractionRow).count() == 1
        votes = {v.rater: v.value for v in votes_for(s, str(item.interaction_id))}
        assert votes == {alice: -1, bob: 1}
    # a queue may deliver an older vote after a newer one (retries, redelivery): the newer stays
    now = datetime.now(UTC)
    first, second = (
        Vote(interaction_id=item.interaction_id, rater=bob, value=v, platform="telegram", at=at)
        for v, at in ((-1, now - timedelta(seconds=1)), (1, now))
    )
    with session_scope(engine) as s:
        assert upsert_vote(s, second)
        assert not upsert_vote(s, first)
    with session_scope(engine) as s:
        votes = {v.rater: v.value for v in votes_for(s, str(item.interaction_id))}
        assert votes == {alice: -1, bob: 1}
        assert upsert_vote(s, second)  # the same vote redelivered: applied again, no change
        done = forget_user(s, alice)
        assert (done.interactions, done.votes) == (1, 1)
    with session_scope(engine) as s:
        assert {v.rater for v in votes_for(s, str(item.interaction_id))} == {bob}
        assert s.query(InteractionRow).count() == 0
    engine.dispose()


def test_a_withdrawal_holds_against_older_votes_in_any_delivery_order(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    bob = hash_id("s", "telegram", 2)
    item = _interaction(hash_id("s", "telegram", 1))
    iid = str(item.interaction_id)
    t0 = datetime.now(UTC)
    t1, t2, t3 = (t0 + timedelta(seconds=k) for k in (1, 2, 3))

    def vote(value: int, at: datetime) -> Vote:
        return Vote(
            interaction_id=item.interaction_id, rater=bob, value=value, platform="slack", at=at
        )  # type: ignore[arg-type]

    def live() -> dict[str, int]:
        with session_scope(engine) as s:
            return {v.rater: v.value for v in votes_for(s, iid)}

    with session_scope(engine) as s:
        upsert_interaction(s, item)
        assert withdraw_vote(s, iid, bob, "slack", t0) == (True, None)  # nothing to withdraw
        assert upsert_vote(s, vote(1, t1))
    since = datetime.now(UTC)
    with session_scope(engine) as s:
        assert upsert_vote(s, vote(1, t1))  # the same vote sent again: no news for retrains
        assert new_votes_since(s, since)[0] == 0 and new_votes_since(s, None)[0] == 1
        assert withdraw_vote(s, iid, bob, "slack", t2) == (True, 1)
    assert live() == {}
    with session_scope(engine) as s:
        assert not upsert_vote(s, vote(1, t1))  # the old vote redelivered: stale
        # the same instant written in another zone is just as old
        assert not upsert_vote(s, vote(1, t1.astimezone(timezone(timedelta(hours=5)))))
        assert new_votes_since(s, None)[0] == 0 and vote_records(s) == []
    assert live() == {}
    with session_scope(engine) as s:
        assert upsert_vote(s, vote(-1, t3))  # voting again after the withdrawal counts
        assert withdraw_vote(s, iid, bob, "slack", t2) == (False, None)  # a late withdrawal
    assert live() == {bob: -1}
    with session_scope(engine) as s:
        done = forget_user(s, bob)
        assert (done.interactions, done.votes) == (0, 1)
    engine.dispose()


def test_on_postgresql_a_cast_holds_the_rater_s_vote_until_it_commits() -> None:
    """Two workers casting for the same (interaction, rater) take turns: the second reads the
    old value only after the first committed, so posterior updates never count it twice."""
    with fresh_postgres_db() as url:
        upgrade(url)
        engine = make_engine(url)
        iid, rater = str(uuid.uuid4()), hash_id("s", "slack", 3)
        seen: list[int | None] = []
        with session_scope(engine) as first:
            assert live_vote(first, iid, rater) is None
            upsert_vote(first, Vote(interaction_id=iid, rater=rater, value=1, platform="slack"))  # type: ignore[arg-type]

            def second() -> None:
                with session_scope(engine) as s:
                    seen.append(live_vote(s, iid, rater))

            other = threading.Thread(target=second)
            other.start()
            other.join(0.5)
            assert other.is_alive() and seen == []  # waiting for the first transaction
        other.join(10)
        assert seen == [1]  # and then it sees the first one's vote
        engine.dispose()


def test_the_last_generator_training_is_the_latest_kept_one(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    runs = [  # (hours after t0, metrics)
        (1, {"generator_kto_steps": 4.0, "generator_discarded": 0.0}),
        (2, {"generator_kto_steps": 4.0, "generator_discarded": 1.0}),  # thrown away
        (3, {"seconds": 10.0}),  # the generator was not trained
    ]
    with session_scope(engine) as s:
        assert last_generator_training(s) is None
        for hours, metrics in runs:
            s.add(
                TrainingRunRow(
                    kind="retrain",
                    status="passed",
                    metrics=metrics,
                    started_at=t0 + timedelta(hours=hours),
                )
            )
    with session_scope(engine) as s:
        assert last_generator_training(s) == t0 + timedelta(hours=1)
    engine.dispose()


def test_migrations_match_the_models(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from thumbloop.store.schema import Base

    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_generated_reply_keeps_its_prompt(db_url: str) -> None:
    from thumbloop.contracts import PromptMessage

    upgrade(db_url)
    engine = make_engine(db_url)
    prompt = [
        PromptMessage(role="system", content="You are a bank assistant."),
        PromptMessage(role="user", content="where is my card?"),
    ]
    item = _interaction(hash_id("s", "telegram", 1)).model_copy(
        update={"reply_strategy": "generative", "generator": "g@1", "reply_prompt": prompt}
    )
    plain = _interaction(hash_id("s", "telegram", 2))
    with session_scope(engine) as s:
        upsert_interaction(s, item)
        upsert_interaction(s, plain)
    with session_scope(engine) as s:
        row = s.get(InteractionRow, str(item.interaction_id))
        assert row is not None
        assert (row.reply_strategy, row.generator) == ("generative", "g@1")
        assert row.reply_prompt == [m.model_dump() for m in prompt]
        other = s.get(InteractionRow, str(plain.interaction_id))
        assert other is not None
        assert (other.reply_strategy, other.reply_prompt) == ("template", None)
    engine.dispose()


def test_cli_db_upgrade(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from thumbloop.cli.main import cli

    url = f"sqlite:///{tmp_path}/cli.db"
    result = CliRunner().invoke(cli, ["db", "upgrade"], env={"THUMBLOOP_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    assert "votes" in inspect(create_engine(url)).get_table_names()


def test_a_failing_write_never_quotes_the_message(db_url: str) -> None:
    """A failed insert's error (what a Celery retry or failure logs) names the statement and
    the constraint, never the values: not SQLAlchemy's parameters, not PostgreSQL's "Failing
    row contains (...)"."""
    import traceback

    from sqlalchemy.exc import IntegrityError

    canary = "my pin is 4711-canary"
    upgrade(db_url)
    engine = make_engine(db_url)
    item = _interaction(hash_id("s", "telegram", 1)).model_copy(update={"text": canary})
    with session_scope(engine) as s:
        upsert_interaction(s, item)
    row = {
        "interaction_id": str(item.interaction_id),
        "platform": "telegram",
        "user_hash": item.user,
        "conversation_hash": item.conversation,
        "text": canary,
        "intent": "card_arrival",
        "intent_confidence": 0.5,
        "sentiment": "neutral",
        "response_id": "card_arrival/1",
        "reply_text": canary,
        "model_version": "thumbloop/1",
    }
    failures = [
        row,  # the same id again: a unique-key violation
        {**row, "interaction_id": str(uuid.uuid4()), "intent": None},  # a NOT NULL violation
    ]
    for values in failures:
        with pytest.raises(IntegrityError) as caught, session_scope(engine) as s:
            s.add(InteractionRow(**values))
        logged = "".join(traceback.format_exception(caught.value))
        assert "INSERT INTO interactions" in logged
        assert canary not in logged and canary not in repr(caught.value)
    engine.dispose()


def test_a_message_with_nul_characters_is_stored(db_url: str) -> None:
    """Serving answers such text (NUL is valid JSON and valid Unicode); PostgreSQL refuses NUL in
    text and in JSON strings, so the store drops it rather than losing the interaction."""
    from thumbloop.contracts import PromptMessage

    upgrade(db_url)
    engine = make_engine(db_url)
    prompt = [PromptMessage(role="user", content="my\x00card")]
    item = _interaction(hash_id("s", "telegram", 3)).model_copy(
        update={"text": "my\x00card", "reply_text": "on\x00its way", "reply_prompt": prompt}
    )
    with session_scope(engine) as s:
        upsert_interaction(s, item)
    with session_scope(engine) as s:
        row = s.get(InteractionRow, str(item.interaction_id))
        assert row is not None
        assert (row.text, row.reply_text) == ("mycard", "onits way")
        assert row.reply_prompt == [{"role": "user", "content": "mycard"}]
    engine.dispose()
