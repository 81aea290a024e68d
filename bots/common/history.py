"""Short per-conversation history: Redis with a TTL in production, in process by default.

On Redis trouble the history reads as empty (and writes are dropped, logged): a reply without
context beats no reply.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

from thumbloop.contracts import Turn
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


class History(Protocol):
    async def get(self, key: str) -> list[Turn]: ...

    async def append(self, key: str, *turns: Turn) -> None: ...

    async def clear(self, key: str) -> None: ...


class InMemoryHistory:
    def __init__(self, max_turns: int, ttl_s: float) -> None:
        self.max_turns, self.ttl_s = max_turns, ttl_s
        self._data: dict[str, tuple[float, list[Turn]]] = {}

    async def get(self, key: str) -> list[Turn]:
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._data.pop(key, None)
            return []
        return list(entry[1])

    async def append(self, key: str, *turns: Turn) -> None:
        kept = (await self.get(key)) + list(turns)
        self._data[key] = (
            time.monotonic() + self.ttl_s,
            kept[-self.max_turns :] if self.max_turns else [],
        )

    async def clear(self, key: str) -> None:
        self._data.pop(key, None)


class RedisHistory:
    def __init__(
        self, url: str, max_turns: int, ttl_s: int, prefix: str = "thumbloop:history"
    ) -> None:
        import redis.asyncio as aioredis  # slow to import, and only a Redis URL needs it

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.max_turns, self.ttl_s, self.prefix = max_turns, ttl_s, prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    async def get(self, key: str) -> list[Turn]:
        try:
            raw = await self._redis.lrange(self._key(key), 0, -1)
        except Exception as exc:  # Redis down: no context, but still a reply
            log.warning("history unavailable (%s)", type(exc).__name__)
            return []
        return [Turn.model_validate(json.loads(item)) for item in raw]

    async def append(self, key: str, *turns: Turn) -> None:
        if not turns or self.max_turns == 0:
            return
        k = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(k, *(t.model_dump_json() for t in turns))
                pipe.ltrim(k, -self.max_turns, -1)
                pipe.expire(k, self.ttl_s)
                await pipe.execute()
        except Exception as exc:
            log.warning("history not saved (%s)", type(exc).__name__)

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._key(key))
        except Exception as exc:
            log.warning("history not cleared (%s)", type(exc).__name__)

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_history(settings: Settings) -> History:
    if settings.redis_url:
        return RedisHistory(
            settings.redis_url, settings.bots.history_turns, settings.bots.history_ttl_s
        )
    return InMemoryHistory(settings.bots.history_turns, settings.bots.history_ttl_s)
