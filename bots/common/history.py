"""Short per-conversation history: Redis with a TTL in production, in process by default.

On Redis trouble the history reads as empty (and writes are dropped, logged): a reply without
context beats no reply.

Each turn is stored with whom it is by or about (``by``: the user's HMAC digest, never a raw
id): the user's message and the bot's reply to it. ``/forget`` removes those turns from every
conversation the user spoke in, a group chat or channel included, and leaves the other people's.
On Redis a set per user (``<bot prefix>:history-by:<digest>``, with the history's TTL) names the
conversations that hold their turns, so forgetting reads a few keys instead of scanning them all.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Protocol

from bots.common.keys import state_prefix
from thumbloop.contracts import Turn
from thumbloop.settings import Settings

log = logging.getLogger(__name__)


class History(Protocol):
    async def get(self, key: str) -> list[Turn]: ...

    async def append(self, key: str, *turns: Turn, by: str | None = None) -> None:
        """Add ``turns`` to conversation ``key``; ``by``: the (hashed) user they are from or
        about, whose ``/forget`` removes them."""
        ...

    async def clear(self, key: str) -> None: ...

    async def forget(self, user: str) -> int:
        """Remove every turn appended ``by=user``, in every conversation; how many went."""
        ...


class InMemoryHistory:
    def __init__(self, max_turns: int, ttl_s: float) -> None:
        self.max_turns, self.ttl_s = max_turns, ttl_s
        self._data: dict[str, tuple[float, list[tuple[str | None, Turn]]]] = {}

    def _live(self, key: str) -> list[tuple[str | None, Turn]]:
        entry = self._data.get(key)
        if entry is None or entry[0] < time.monotonic():
            self._data.pop(key, None)
            return []
        return list(entry[1])

    async def get(self, key: str) -> list[Turn]:
        return [turn for _, turn in self._live(key)]

    async def append(self, key: str, *turns: Turn, by: str | None = None) -> None:
        kept = self._live(key) + [(by, t) for t in turns]
        self._data[key] = (
            time.monotonic() + self.ttl_s,
            kept[-self.max_turns :] if self.max_turns else [],
        )

    async def clear(self, key: str) -> None:
        self._data.pop(key, None)

    async def forget(self, user: str) -> int:
        removed = 0
        for key in list(self._data):
            expires, turns = self._data[key]
            kept = [(by, t) for by, t in turns if by != user]
            removed += len(turns) - len(kept)
            self._data[key] = (expires, kept)
        return removed


def _entry(turn: Turn, by: str | None) -> str:
    data: dict[str, Any] = turn.model_dump(mode="json")
    if by is not None:
        data["by"] = by
    return json.dumps(data)


def _author(raw: bytes | str) -> str | None:
    try:
        by = json.loads(raw).get("by")
    except (ValueError, AttributeError):
        return None
    return str(by) if by is not None else None


class RedisHistory:
    def __init__(self, url: str, max_turns: int, ttl_s: int, prefix: str) -> None:
        import redis.asyncio as aioredis  # slow to import, and only a Redis URL needs it

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.max_turns, self.ttl_s, self.prefix = max_turns, ttl_s, prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def _index(self, user: str) -> str:
        return f"{self.prefix}-by:{user}"

    async def get(self, key: str) -> list[Turn]:
        try:
            raw = await self._redis.lrange(self._key(key), 0, -1)
        except Exception as exc:  # Redis down: no context, but still a reply
            log.warning("history unavailable (%s)", type(exc).__name__)
            return []
        turns = []
        for item in raw:
            data = json.loads(item)
            data.pop("by", None)
            turns.append(Turn.model_validate(data))
        return turns

    async def append(self, key: str, *turns: Turn, by: str | None = None) -> None:
        if not turns or self.max_turns == 0:
            return
        k = self._key(key)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.rpush(k, *(_entry(t, by) for t in turns))
                pipe.ltrim(k, -self.max_turns, -1)
                pipe.expire(k, self.ttl_s)
                if by is not None:
                    pipe.sadd(self._index(by), key)
                    pipe.expire(self._index(by), self.ttl_s)
                await pipe.execute()
        except Exception as exc:
            log.warning("history not saved (%s)", type(exc).__name__)

    async def clear(self, key: str) -> None:
        try:
            await self._redis.delete(self._key(key))
        except Exception as exc:
            log.warning("history not cleared (%s)", type(exc).__name__)

    async def forget(self, user: str) -> int:
        index = self._index(user)
        removed = 0
        try:
            for member in await self._redis.smembers(index):
                k = self._key(member.decode() if isinstance(member, bytes) else str(member))
                for item in await self._redis.lrange(k, 0, -1):
                    if _author(item) == user:
                        # by value: turns appended meanwhile (other people's) stay where they are
                        removed += int(await self._redis.lrem(k, 0, item))  # type: ignore[arg-type]
            await self._redis.delete(index)
        except Exception as exc:  # the turns still expire with the history's TTL
            log.error("history of a forgotten user not erased (%s)", type(exc).__name__)
        return removed

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_history(settings: Settings, platform: str) -> History:
    """``platform``'s history: on Redis under that bot's own prefix (:mod:`bots.common.keys`)."""
    if settings.redis_url:
        return RedisHistory(
            settings.redis_url,
            settings.bots.history_turns,
            settings.bots.history_ttl_s,
            prefix=f"{state_prefix(platform)}:history",
        )
    return InMemoryHistory(settings.bots.history_turns, settings.bots.history_ttl_s)
