"""Which interaction a bot reply carries, on Redis: /forget drops the references of the replies
to the user's messages, and the set that listed them (a private chat's key holds the user's
digest: nothing named by it is left)."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from bots.telegram.state import RedisReplyRefs
from tests.integration.servers import free_port
from tests.services import redis_url

pytestmark = [pytest.mark.redis]

URL = redis_url(10)


def test_forget_drops_the_references_of_replies_to_the_users_messages() -> None:
    prefix = f"thumbloop:test-tg-ref:{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(URL)
    cora, dan = "c0" * 32, "d0" * 32
    hers, his = uuid.uuid4(), uuid.uuid4()

    async def go() -> None:
        refs = RedisReplyRefs(URL, ttl_s=600, prefix=prefix)
        try:
            await refs.put("group", 1, hers, asker=cora)
            await refs.put("group", 2, his, asker=dan)
            await refs.put(cora, 3, uuid.uuid4(), asker=cora)  # her private chat
            assert 0 < raw.ttl(f"{prefix}-by:{cora}") <= 600
            assert await refs.forget(cora) == 2
            assert await refs.get("group", 1) is None and await refs.get(cora, 3) is None
            assert await refs.get("group", 2) == his
            assert not [k for k in raw.keys(f"{prefix}*") if cora.encode() in k]
        finally:
            await refs.aclose()

    try:
        asyncio.run(go())
    finally:
        for key in raw.keys(f"{prefix}*"):
            raw.delete(key)
        raw.close()


def test_forget_with_redis_down_is_logged_not_raised() -> None:
    async def go() -> None:
        refs = RedisReplyRefs(f"redis://127.0.0.1:{free_port()}/0")
        try:
            assert await refs.forget("c0" * 32) == 0
        finally:
            await refs.aclose()

    asyncio.run(go())
