"""Which interaction a bot reply carries, by (hashed chat, message id).

Reactions arrive with only the chat and message id; this maps them back to the interaction so
they count as votes. Redis with a TTL in production (shared by every bot process), in process on
the embedded default. Keys use the hashed chat id: raw Telegram ids never reach Redis (a private
chat's id is its user's, so its hash is the user's digest). ``/forget`` drops the references of
the replies to the user's messages (:meth:`ReplyRefs.forget`): reactions on them no longer count,
and no key named by the user's digest is left; on Redis a set per user lists them.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from typing import Protocol

from bots.common.keys import PREFIXES
from bots.common.user_index import erase_indexed
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

REF_TTL_S = 30 * 86_400  # reactions to month-old replies still count


class ReplyRefs(Protocol):
    async def put(
        self,
        conversation: str,
        message_id: int,
        interaction_id: uuid.UUID,
        asker: str | None = None,
    ) -> None:
        """``asker``: the (hashed) user whose message the reply answers."""
        ...

    async def forget(self, user: str) -> int:
        """Drop the references of the replies to ``user``'s messages; how many went."""
        ...

    async def get(self, conversation: str, message_id: int) -> uuid.UUID | None: ...

    async def aclose(self) -> None: ...


class InMemoryReplyRefs:
    """Bounded (oldest dropped first) and expiring."""

    def __init__(self, ttl_s: float = REF_TTL_S, max_items: int = 100_000) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._data: OrderedDict[tuple[str, int], tuple[float, uuid.UUID]] = OrderedDict()
        self._askers: dict[tuple[str, int], str] = {}

    async def put(
        self,
        conversation: str,
        message_id: int,
        interaction_id: uuid.UUID,
        asker: str | None = None,
    ) -> None:
        key = (conversation, message_id)
        self._data[key] = (time.monotonic() + self.ttl_s, interaction_id)
        self._data.move_to_end(key)
        if asker is not None:
            self._askers[key] = asker
        while len(self._data) > self.max_items:
            old, _ = self._data.popitem(last=False)
            self._askers.pop(old, None)

    async def forget(self, user: str) -> int:
        keys = [key for key, asker in self._askers.items() if asker == user]
        for key in keys:
            self._data.pop(key, None)
            del self._askers[key]
        return len(keys)

    async def get(self, conversation: str, message_id: int) -> uuid.UUID | None:
        entry = self._data.get((conversation, message_id))
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[(conversation, message_id)]
            self._askers.pop((conversation, message_id), None)
            return None
        return entry[1]

    async def aclose(self) -> None:
        self._data.clear()
        self._askers.clear()


class RedisReplyRefs:
    """On Redis trouble a lookup finds nothing (the reaction is not counted, and logged)."""

    def __init__(
        self, url: str, ttl_s: int = REF_TTL_S, prefix: str = f"{PREFIXES['telegram']}:ref"
    ) -> None:
        import redis.asyncio as aioredis  # slow to import, and only a Redis URL needs it

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.ttl_s, self.prefix = ttl_s, prefix

    def _key(self, conversation: str, message_id: int) -> str:
        return f"{self.prefix}:{conversation}:{message_id}"

    def _index(self, user: str) -> str:
        return f"{self.prefix}-by:{user}"

    async def put(
        self,
        conversation: str,
        message_id: int,
        interaction_id: uuid.UUID,
        asker: str | None = None,
    ) -> None:
        key = self._key(conversation, message_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, str(interaction_id), ex=self.ttl_s)
                if asker is not None:
                    pipe.sadd(self._index(asker), key)
                    pipe.expire(self._index(asker), self.ttl_s)
                await pipe.execute()
        except Exception as exc:  # Redis down: this reply can still be rated with its buttons
            log.warning("reply reference not saved (%s)", type(exc).__name__)

    async def get(self, conversation: str, message_id: int) -> uuid.UUID | None:
        try:
            raw = await self._redis.get(self._key(conversation, message_id))
        except Exception as exc:
            log.warning(
                "reply reference unavailable (%s); reaction not counted", type(exc).__name__
            )
            return None
        if raw is None:
            return None
        try:
            return uuid.UUID(raw.decode() if isinstance(raw, bytes) else str(raw))
        except ValueError:
            return None

    async def forget(self, user: str) -> int:
        return await erase_indexed(self._redis, self._index(user), "reply references")

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_reply_refs(settings: Settings) -> ReplyRefs:
    if settings.redis_url:
        return RedisReplyRefs(settings.redis_url)
    return InMemoryReplyRefs()
