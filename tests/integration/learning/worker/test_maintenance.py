"""Retention: beat's daily task redacts messages older than THUMBLOOP_RETENTION_DAYS; votes,
labels and posterior counts stay, and retrains skip the redacted rows (real PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from learning.retrain.feedback_store import vote_records
from learning.worker.maintenance import APPLY_RETENTION
from learning.worker.posterior_sync import sql_counts
from tests.integration.learning.worker.conftest import interaction, vote
from thumbloop.contracts import PromptMessage
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import DroppedTaskRow, InteractionRow, VoteRow
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE, interaction_payload, vote_payload

pytestmark = [pytest.mark.postgres]


def test_retention_redacts_old_messages_and_keeps_votes_and_counts(
    pg_url: str, worker_tasks
) -> None:  # type: ignore[no-untyped-def]
    keep_forever = worker_tasks(None)  # the default: no retention
    run = worker_tasks(None, retention_days=30)
    now = datetime.now(UTC)
    prompt = [PromptMessage(role="user", content="old words")]
    old = interaction("alice", "old words", at=now - timedelta(days=40), prompt=prompt)
    new = interaction("bob", "new words", response_id="card_arrival/2", at=now)
    for item in (old, new):
        assert run(RECORD_INTERACTION, interaction_payload(item)) == "stored"
    for item, who, value in ((old, "carol", 1), (old, "dave", -1), (new, "carol", 1)):
        assert run(RECORD_VOTE, vote_payload(vote(item, who, value))) == "stored"
    engine = make_engine(pg_url)
    with session_scope(engine) as s:
        s.add(
            DroppedTaskRow(task="t", reason="r", payload="old", dropped_at=now - timedelta(days=31))
        )
        s.add(DroppedTaskRow(task="t", reason="r", payload="new"))

    def votes_and_counts() -> tuple[list[tuple[str, str, int]], object]:
        with session_scope(engine) as s:
            votes = s.execute(select(VoteRow.interaction_id, VoteRow.rater, VoteRow.value)).all()
            return sorted((i, r, v) for i, r, v in votes), sql_counts(s)

    before = votes_and_counts()
    assert "skipped" in keep_forever(APPLY_RETENTION, {})
    with session_scope(engine) as s:
        assert s.get(InteractionRow, str(old.interaction_id)).text == "old words"  # type: ignore[union-attr]

    done = run(APPLY_RETENTION, {})
    assert (done["redacted"], done["dropped_tasks_deleted"]) == (1, 1)
    assert run(APPLY_RETENTION, {})["redacted"] == 0  # nothing left to redact
    with session_scope(engine) as s:
        gone = s.get(InteractionRow, str(old.interaction_id))
        kept = s.get(InteractionRow, str(new.interaction_id))
        assert gone is not None and kept is not None
        assert (gone.text, gone.reply_text, gone.reply_prompt) == (None, None, None)
        assert (gone.intent, gone.response_id) == ("card_arrival", "card_arrival/1")
        assert (kept.text, kept.reply_text) == ("new words", "It is on its way.")
        assert s.scalars(select(DroppedTaskRow.payload)).all() == ["new"]
        # retrains learn only from messages they can still read
        assert [(v.text, v.value) for v in vote_records(s)] == [("new words", 1)]
    assert votes_and_counts() == before
    engine.dispose()
