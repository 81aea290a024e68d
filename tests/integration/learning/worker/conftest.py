"""The learning tasks run in this process (``Task.apply``) on the machine's PostgreSQL and
Redis: each test controls what every task sees, e.g. a Redis that is away for one vote."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from celery import Celery

from learning.worker.tasks import register_tasks
from tests.integration.servers import flushed_redis, fresh_postgres_db
from tests.services import redis_url
from thumbloop.contracts import Interaction, PromptMessage, Vote
from thumbloop.identity import hash_id
from thumbloop.settings import Settings
from thumbloop.store.db import upgrade

NAMESPACE = "thumbloop-worker-test"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: a Redis blip

Run = Callable[[str, dict[str, Any]], Any]


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_db() as url:
        upgrade(url)
        yield url


@pytest.fixture
def redis_db() -> Iterator[str]:
    with flushed_redis(redis_url(14)) as url:
        yield url


@pytest.fixture
def worker_tasks(tmp_path: Path, pg_url: str) -> Callable[..., Run]:
    """``worker_tasks(redis=url, **settings)``: run a task by name as the worker would, with its
    own Celery app (so one app can have Redis away while another has it)."""

    def make(redis: str | None, **settings: Any) -> Run:
        app = Celery(f"test-{uuid.uuid4().hex[:6]}", set_as_current=False)
        config = Settings(
            home=tmp_path,
            database_url=pg_url,
            redis_url=redis,
            model_name=NAMESPACE,
            **settings,
        )
        register_tasks(app, config)

        def run(name: str, payload: dict[str, Any]) -> Any:
            return app.tasks[name].apply(kwargs=payload).get()

        return run

    return make


def user(name: str) -> str:
    return hash_id("k", "telegram", name)


def interaction(
    who: str,
    text: str,
    *,
    response_id: str = "card_arrival/1",
    at: datetime | None = None,
    conversation: str = "chat",
    prompt: list[PromptMessage] | None = None,
) -> Interaction:
    return Interaction(
        interaction_id=uuid.uuid4(),
        platform="telegram",
        user=user(who),
        conversation=hash_id("k", "telegram", conversation),
        text=text,
        intent="card_arrival",
        intent_confidence=0.9,
        sentiment="neutral",
        response_id=response_id,
        reply_text="It is on its way.",
        model_version=f"{NAMESPACE}/1",
        reply_strategy="generative" if prompt else "template",
        generator="g@1" if prompt else None,
        reply_prompt=prompt,
        at=at or datetime.now(UTC),
    )


def vote(item: Interaction, who: str, value: int, at: datetime | None = None) -> Vote:
    return Vote(
        interaction_id=item.interaction_id,
        rater=user(who),
        value=value,  # type: ignore[arg-type]
        platform="telegram",
        at=at or datetime.now(UTC),
    )
