"""What the Slack adapter remembers between requests: deliveries already handled (so Slack's
retries never give a second reply or vote) and which interaction each bot reply belongs to (so a
reaction on it can count as a vote).

Redis with TTLs in production, in process by default, behind one small interface. Keys hold
hashed channel ids, never raw ones. ``/forget`` drops the index entries of the replies to the
user's messages (reactions on them no longer count); on Redis a set per user lists them.

On Redis trouble ``claim`` lets the delivery through (a rare duplicate beats a lost reply) and
``reply_for`` finds nothing; both are logged.
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

SEEN_TTL_S = 3600  # Slack retries within minutes; an hour is ample
REPLY_TTL_S = 30 * 86_400  # reactions on replies older than this are not counted


class SlackState(Protocol):
    async def claim(self, key: str) -> bool:
        """True the first time ``key`` is seen (within the TTL), False after."""
        ...

    async def remember_reply(
        self, conversation: str, ts: str, interaction_id: uuid.UUID, asker: str | None = None
    ) -> None:
        """``asker``: the (hashed) user whose message the reply answers."""
        ...

    async def reply_for(self, conversation: str, ts: str) -> uuid.UUID | None: ...

    async def forget(self, user: str) -> int:
        """Drop the replies to ``user``'s messages from the index; how many went."""
        ...


class _TTLDict:
    """A bounded dict whose entries expire; the oldest go first when it is full."""

    def __init__(self, ttl_s: float, max_items: int) -> None:
        self.ttl_s, self.max_items = ttl_s, max_items
        self._data: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def get(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            return None
        return entry[1]

    def put(self, key: str, value: str) -> None:
        self._data[key] = (time.monotonic() + self.ttl_s, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_items:
            self._data.popitem(last=False)

    def pop(self, key: str) -> bool:
        return self._data.pop(key, None) is not None

    def key_list(self) -> list[str]:
        return list(self._data)


class InMemorySlackState:
    def __init__(self, max_items: int = 100_000) -> None:
        self._seen = _TTLDict(SEEN_TTL_S, max_items)
        self._replies = _TTLDict(REPLY_TTL_S, max_items)  # "<interaction id> <asker>"

    async def claim(self, key: str) -> bool:
        if self._seen.get(key) is not None:
            return False
        self._seen.put(key, "1")
        return True

    async def remember_reply(
        self, conversation: str, ts: str, interaction_id: uuid.UUID, asker: str | None = None
    ) -> None:
        self._replies.put(f"{conversation}:{ts}", f"{interaction_id} {asker or ''}")

    async def reply_for(self, conversation: str, ts: str) -> uuid.UUID | None:
        found = self._replies.get(f"{conversation}:{ts}")
        return uuid.UUID(found.split(" ")[0]) if found else None

    async def forget(self, user: str) -> int:
        keys = [
            key
            for key in self._replies.key_list()
            if (found := self._replies.get(key)) is not None and found.split(" ")[1] == user
        ]
        for key in keys:
            self._replies.pop(key)
        return len(keys)


class RedisSlackState:
    def __init__(self, url: str, prefix: str = PREFIXES["slack"]) -> None:
        import redis.asyncio as aioredis  # slow to import, and only a Redis URL needs it

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix = prefix

    async def claim(self, key: str) -> bool:
        try:
            return bool(
                await self._redis.set(f"{self.prefix}:seen:{key}", 1, nx=True, ex=SEEN_TTL_S)
            )
        except Exception as exc:
            log.warning("delivery dedupe unavailable (%s); handling it anyway", type(exc).__name__)
            return True

    def _index(self, user: str) -> str:
        return f"{self.prefix}:replies-to:{user}"

    async def remember_reply(
        self, conversation: str, ts: str, interaction_id: uuid.UUID, asker: str | None = None
    ) -> None:
        key = f"{self.prefix}:reply:{conversation}:{ts}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, str(interaction_id), ex=REPLY_TTL_S)
                if asker is not None:
                    pipe.sadd(self._index(asker), key)
                    pipe.expire(self._index(asker), REPLY_TTL_S)
                await pipe.execute()
        except Exception as exc:
            log.warning("reply not indexed for reactions (%s)", type(exc).__name__)

    async def reply_for(self, conversation: str, ts: str) -> uuid.UUID | None:
        try:
            found = await self._redis.get(f"{self.prefix}:reply:{conversation}:{ts}")
        except Exception as exc:
            log.warning("reply index unavailable (%s)", type(exc).__name__)
            return None
        if not found:
            return None
        return uuid.UUID(found.decode() if isinstance(found, bytes) else str(found))

    async def forget(self, user: str) -> int:
        return await erase_indexed(self._redis, self._index(user), "reply index")

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_slack_state(settings: Settings) -> SlackState:
    if settings.redis_url:
        return RedisSlackState(settings.redis_url)
    return InMemorySlackState()
