"""The conversation history on Redis: turns carry whom they are by, a set per user names the
conversations holding theirs, and /forget removes exactly those turns (other people's stay)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from bots.common.history import RedisHistory
from tests.integration.servers import free_port
from tests.services import redis_url
from thumbloop.contracts import Turn

pytestmark = [pytest.mark.redis]

URL = redis_url(10)


def test_forget_removes_the_users_turns_in_every_conversation_and_its_index() -> None:
    prefix = f"thumbloop:test-history:{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(URL)
    alice, bob = "a1" * 32, "b2" * 32

    async def go() -> None:
        h = RedisHistory(URL, max_turns=10, ttl_s=600, prefix=prefix)
        try:
            await h.append("dm", Turn(role="user", text="alice dm"), by=alice)
            await h.append("group", Turn(role="user", text="alice says"), by=alice)
            await h.append("group", Turn(role="assistant", text="to alice"), by=alice)
            await h.append("group", Turn(role="user", text="bob says"), by=bob)
            await h.append("group", Turn(role="assistant", text="to bob"), by=bob)
            assert [t.text for t in await h.get("group")][:2] == ["alice says", "to alice"]
            index = f"{prefix}-by:{alice}"
            assert set(raw.smembers(index)) == {b"dm", b"group"}
            assert 0 < raw.ttl(index) <= 600
            assert await h.forget(alice) == 3
            assert await h.get("dm") == []
            assert [t.text for t in await h.get("group")] == ["bob says", "to bob"]
            assert not raw.exists(index)
            assert 0 < raw.ttl(f"{prefix}:group") <= 600  # what is left keeps its TTL
            assert await h.forget(alice) == 0
        finally:
            await h.aclose()

    try:
        asyncio.run(go())
    finally:
        for key in raw.keys(f"{prefix}*"):
            raw.delete(key)
        raw.close()


def test_forget_with_redis_down_is_logged_not_raised() -> None:
    async def go() -> None:
        h = RedisHistory(f"redis://127.0.0.1:{free_port()}/0", 4, 60, "thumbloop:test:history")
        try:
            assert await h.forget("a1" * 32) == 0
        finally:
            await h.aclose()

    asyncio.run(go())
