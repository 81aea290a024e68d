"""/forget erases every row that holds the user's words and leaves a tombstone: tasks made
before it and delivered after it store nothing (real PostgreSQL and Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import inspect, select, text

from tests.integration.learning.worker.conftest import NAMESPACE, interaction, user, vote
from thumbloop.contracts import PromptMessage
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import DroppedTaskRow, InteractionRow, VoteRow
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_INTERACTION,
    RECORD_VOTE,
    WITHDRAW_VOTE,
    forget_payload,
    interaction_payload,
    vote_payload,
    withdraw_payload,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CANARY = "zebra-canary-7f3a"


def _tables_holding(url: str, needle: str) -> list[str]:
    """Every table (whatever the schema holds now) with a row that contains ``needle``."""
    engine = make_engine(url)
    found = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            rows = conn.execute(text(f'SELECT * FROM "{table}"')).all()
            if any(needle in str(tuple(row)) for row in rows):
                found.append(table)
    engine.dispose()
    return found


def test_forget_erases_the_user_everywhere_and_late_tasks_store_nothing(
    pg_url: str, redis_db: str, worker_tasks
) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(redis_db)
    r = redis.Redis.from_url(redis_db, decode_responses=True)
    said = f"my card {CANARY} never   arrived"
    mine = interaction("alice", said, response_id="card_arrival/1")
    # bob's generated reply in the same group chat: alice's message is a history turn of its
    # prompt, whitespace collapsed as serving/replies/prompt.py writes it
    prompt = [
        PromptMessage(role="system", content="You are the customer support assistant."),
        PromptMessage(role="user", content=" ".join(said.split())),
        PromptMessage(role="assistant", content="It is on its way."),
        PromptMessage(role="user", content="mine too\n\nAnswer using this reference answer."),
    ]
    theirs = interaction("bob", "mine too", response_id="card_arrival/2", prompt=prompt)
    for item in (mine, theirs):
        assert run(RECORD_INTERACTION, interaction_payload(item)) == "stored"
    for item, who, value in ((mine, "alice", 1), (mine, "bob", -1), (theirs, "alice", 1)):
        assert run(RECORD_VOTE, vote_payload(vote(item, who, value))) == "stored"
    assert run(RECORD_VOTE, vote_payload(vote(theirs, "carol", 1))) == "stored"
    # a malformed task of alice's, kept in dropped_tasks with her words in its payload
    bad = interaction_payload(interaction("alice", f"again {CANARY}"))
    bad["interaction"]["intent_confidence"] = 7
    assert run(RECORD_INTERACTION, bad) == "dropped"
    assert set(_tables_holding(pg_url, CANARY)) == {"interactions", "dropped_tasks"}

    forgot_at = datetime.now(UTC)
    erase = forget_payload(user("alice"), "telegram") | {"at": forgot_at.isoformat()}
    run(FORGET_USER, erase)

    # made before the forget, delivered after it (a retry, a bot's outbox): nothing stored
    before = forgot_at - timedelta(minutes=1)
    late = interaction("alice", f"late {CANARY}", at=before)
    assert run(RECORD_INTERACTION, interaction_payload(late)) == "forgotten"
    assert run(RECORD_VOTE, vote_payload(vote(theirs, "alice", -1, before))) == "forgotten"
    late_withdrawal = withdraw_payload(str(theirs.interaction_id), user("alice"), "x", before)
    assert run(WITHDRAW_VOTE, late_withdrawal) == "forgotten"

    assert _tables_holding(pg_url, CANARY) == []
    assert _tables_holding(pg_url, user("alice")) == ["forgotten_users"]  # the tombstone only
    engine = make_engine(pg_url)
    with session_scope(engine) as s:
        bobs = s.get(InteractionRow, str(theirs.interaction_id))
        assert bobs is not None and bobs.text == "mine too" and bobs.reply_prompt is None
        assert s.scalar(select(VoteRow.value).where(VoteRow.rater == user("carol"))) == 1
        kinds = s.execute(select(DroppedTaskRow.kind, DroppedTaskRow.payload)).all()
        assert sorted(kinds) == [("forgotten", "")] * 3
    # the posteriors serving samples from lost alice's votes (and the votes on her message)
    posterior = {
        k: float(v) for k, v in r.hgetall(f"thumbloop:posterior:{NAMESPACE}:card_arrival").items()
    }
    assert posterior == {"card_arrival/2|a": 1.0, "card_arrival/2|b": 0.0}

    # the user came back after the forget: that is new, and stored
    back = interaction("alice", "hello again", at=forgot_at + timedelta(seconds=1))
    assert run(RECORD_INTERACTION, interaction_payload(back)) == "stored"
    with session_scope(engine) as s:
        assert s.get(InteractionRow, str(back.interaction_id)) is not None
    engine.dispose()
    r.close()
