"""The adapter's memory (repeat deliveries, reply index) and its background task outbox."""

from __future__ import annotations

import asyncio
import socket
import uuid
from typing import Any

import pytest

from bots.slack_outbox import Outbox
from bots.slack_state import InMemorySlackState, RedisSlackState, make_slack_state
from thumbloop.settings import Settings


async def test_in_memory_state_claims_once_and_indexes_replies() -> None:
    state = InMemorySlackState()
    assert await state.claim("event:Ev1") is True
    assert await state.claim("event:Ev1") is False
    assert await state.claim("event:Ev2") is True
    iid = uuid.uuid4()
    await state.remember_reply("conv", "1.5", iid)
    assert await state.reply_for("conv", "1.5") == iid
    assert await state.reply_for("conv", "1.6") is None


async def test_in_memory_state_is_bounded() -> None:
    state = InMemorySlackState(max_items=3)
    for i in range(5):
        assert await state.claim(f"k{i}")
    assert await state.claim("k0") is True  # the oldest were let go
    assert await state.claim("k4") is False


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_redis_state_down_lets_messages_through_and_finds_no_reply() -> None:
    state = RedisSlackState(f"redis://127.0.0.1:{_closed_port()}/0")
    try:
        assert await state.claim("event:Ev1") is True  # better a rare repeat than no reply
        assert await state.claim("event:Ev1") is True
        await state.remember_reply("conv", "1.5", uuid.uuid4())  # logged, not raised
        assert await state.reply_for("conv", "1.5") is None
    finally:
        await state.aclose()


def test_make_slack_state_follows_settings(tmp_path: Any) -> None:
    assert isinstance(make_slack_state(Settings(home=tmp_path)), InMemorySlackState)
    made = make_slack_state(Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(made, RedisSlackState)


class FlakyBroker:
    """A TaskSender whose broker refuses the first ``fail`` sends."""

    def __init__(self, fail: int) -> None:
        self.fail = fail
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("broker down")
        self.sent.append((name, kwargs))
        return f"id-{len(self.sent)}"


async def test_outbox_retries_in_order_until_the_broker_takes_them() -> None:
    broker = FlakyBroker(fail=3)
    outbox = Outbox(broker, backoff_s=0.01, max_backoff_s=0.05)
    for i in range(4):
        assert outbox.submit("learning.record_vote", {"n": i})
    assert await outbox.drain(timeout_s=10)
    assert [kw["n"] for _, kw in broker.sent] == [0, 1, 2, 3]
    assert (outbox.sent, outbox.failed_attempts, outbox.pending) == (4, 3, 0)
    await outbox.aclose()


async def test_a_full_outbox_drops_new_items_and_counts_them(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = FlakyBroker(fail=10**6)
    outbox = Outbox(broker, max_pending=2, backoff_s=0.01, max_backoff_s=0.02)
    assert outbox.submit("a", {}) and outbox.submit("b", {})
    assert outbox.submit("c", {}) is False
    assert outbox.dropped == 1 and "dropped c" in caplog.text
    await asyncio.sleep(0.05)
    assert await outbox.drain(timeout_s=0.1) is False
    await outbox.aclose(timeout_s=0.1)
    assert outbox.pending == 2 and "2 unsent" in caplog.text
