"""The Slack adapter's memory: repeat deliveries and the reply index."""

from __future__ import annotations

import socket
import uuid
from typing import Any

from bots.slack.state import InMemorySlackState, RedisSlackState, make_slack_state
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


async def test_in_memory_forget_drops_the_replies_to_the_users_messages() -> None:
    state = InMemorySlackState()
    hers, his = uuid.uuid4(), uuid.uuid4()
    await state.remember_reply("conv", "1.5", hers, asker="dora")
    await state.remember_reply("conv", "1.6", his, asker="alice")
    await state.remember_reply("conv", "1.7", uuid.uuid4())
    assert await state.forget("dora") == 1
    assert await state.reply_for("conv", "1.5") is None
    assert await state.reply_for("conv", "1.6") == his
    assert await state.forget("dora") == 0


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
        assert await state.forget("dora") == 0  # logged, not raised
    finally:
        await state.aclose()


def test_make_slack_state_follows_settings(tmp_path: Any) -> None:
    assert isinstance(make_slack_state(Settings(home=tmp_path)), InMemorySlackState)
    made = make_slack_state(Settings(home=tmp_path, redis_url="redis://127.0.0.1:1/0"))
    assert isinstance(made, RedisSlackState)
