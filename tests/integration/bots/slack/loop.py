"""The Slack adapter end to end, for the tests: the real bolt app over HTTP on loopback, signed
deliveries, the real serving worker with a tiny bundle, a local Slack Web API, and the learning
Celery worker (its real tasks) writing to a migrated database, with Redis as broker and shared
state (the fixtures are in ``conftest.py``). Here: who talks, and what the database then holds."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from bots.common.signing import SigningKeys
from bots.slack.app import SlackBot
from tests.integration.fakes.slack_api import Call, FakeSlackApi, SlackDelivery
from tests.services import redis_url
from thumbloop.identity import hash_id
from thumbloop.store.db import session_scope, votes_for
from thumbloop.store.schema import InteractionRow

REDIS_URL = redis_url(13)  # the loop's own database: flushed before and after
SIGNING_SECRET = "slack-signing-secret-for-tests"
ID_KEY = "slack-id-key-for-tests"  # hashes ids
SIGNING_KEY = "slack-signing-key-for-tests"  # signs buttons: a key of its own
KEYS = SigningKeys(SIGNING_KEY)
ALICE, BOB = "U0ALICE01", "U0BOB0001"
DM_ALICE = "D0ALICE01"
_ts = itertools.count(1)


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


def h(raw: str) -> str:
    return hash_id(ID_KEY, "slack", raw)


@dataclass
class Worker:
    engine: Engine
    ran: list[tuple[str, dict[str, Any]]]  # every task the worker started, in order

    def count(self, name: str, pred: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
        return sum(1 for n, kw in list(self.ran) if n == name and pred(kw))


@dataclass
class Running:
    bot: SlackBot
    slack: SlackDelivery
    base: str


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def votes(engine: Engine, iid: str) -> list[tuple[str, int]]:
    """The live votes (a withdrawal leaves a tombstone row that is not a vote)."""
    with session_scope(engine) as s:
        return [(r.rater, r.value) for r in votes_for(s, iid)]


def interactions(engine: Engine, user_hash: str) -> list[InteractionRow]:
    with session_scope(engine) as s:
        return list(s.scalars(select(InteractionRow).where(InteractionRow.user_hash == user_hash)))


def say(
    running: Running,
    fake: FakeSlackApi,
    text: str,
    *,
    user: str = ALICE,
    channel: str = DM_ALICE,
    thread_ts: str | None = None,
) -> tuple[str, Call]:
    """A DM from ``user``; returns the message ts and the bot's chat.postMessage call."""
    before = fake.count("chat.postMessage")
    ts = new_ts()
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    assert running.slack.event(event).status_code == 200
    return ts, fake.wait_for("chat.postMessage", before + 1)[before]
