"""Beat's task that groups the review inbox's new messages by meaning runs in the worker, on
PostgreSQL: it embeds only when there is something new, and is on beat's schedule."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from learning.review.index import sync
from learning.worker.maintenance import GROUP_REVIEW_MESSAGES, beat_schedule
from tests.integration.learning.worker.conftest import interaction
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import ReviewItemRow
from thumbloop.task_names import RECORD_INTERACTION, interaction_payload

pytestmark = [pytest.mark.postgres]


def test_the_worker_groups_paraphrases_in_the_inbox(pg_url: str, worker_tasks) -> None:  # type: ignore[no-untyped-def]
    run = worker_tasks(None)
    assert run(GROUP_REVIEW_MESSAGES, {})["new_keys"] == 0  # an empty inbox: nothing to embed
    texts = [
        "I was charged twice for the same coffee",
        "I was charged two times for the same coffee",
        "what is the exchange rate",
    ]
    for k, text in enumerate(texts):
        assert run(RECORD_INTERACTION, interaction_payload(interaction(f"u{k}", text))) == "stored"
    engine = make_engine(pg_url)
    sync(engine)  # what the review app does as interactions arrive
    done = run(GROUP_REVIEW_MESSAGES, {})
    assert (done["new_keys"], done["joined"], done["leaders"]) == (3, 1, 2)
    with session_scope(engine) as s:
        assert s.scalar(select(func.count(func.distinct(ReviewItemRow.group_key)))) == 2
    engine.dispose()


def test_the_task_is_on_beats_schedule() -> None:
    schedule = beat_schedule(Settings())
    assert schedule["group-review-messages"]["task"] == GROUP_REVIEW_MESSAGES
