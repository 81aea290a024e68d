"""What the bots remember about follow-ups: the choices offered per interaction (buttons carry
only a choice's place), each rater's current pick (so a second tap on it withdraws it), and the
button presses already handled (so a redelivered press records nothing twice).

Redis with TTLs in production (shared by every bot process), in process (bounded, expiring) on
the embedded default, behind one small interface shared by Telegram, Slack and the terminal.
Keys hold interaction ids and HMAC digests, never raw platform ids. ``/forget`` erases a user's
picks and the choices offered under their messages (:meth:`FollowUpStore.forget`); on Redis a
set per user (``<prefix>:user:<digest>``, as long-lived as what it names) lists those keys.

On Redis trouble a lookup finds nothing (the user is told the choice expired) and ``claim`` lets
the press through (a rare duplicate correction is harmless: the one made last wins); all of it is
logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import OrderedDict
from typing import Protocol

from bots.common.followup import FollowUp
from bots.common.keys import state_prefix
from bots.common.user_index import erase_indexed
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

FOLLOWUP_TTL_S = 30 * 86_400  # as long as a 👎 on the reply still counts
SEEN_TTL_S = 86_400  # platforms redeliver within minutes; a day is ample


class FollowUpStore(Protocol):
    async def offer(
        self, interaction_id: uuid.UUID, followup: FollowUp, asker: str | None = None
    ) -> None:
        """Remember what ``interaction_id``'s buttons offer; ``asker``: the (hashed) user whose
        message it answers, whose ``/forget`` erases it."""
        ...

    async def offered(self, interaction_id: uuid.UUID) -> FollowUp | None: ...

    async def set_pick(self, interaction_id: uuid.UUID, rater: str, choice: str | None) -> None:
        """``rater``'s current choice (``None``: withdrawn)."""
        ...

    async def picked(self, interaction_id: uuid.UUID, rater: str) -> str | None: ...

    async def claim(self, key: str) -> bool:
        """True the first time ``key`` (a button press's own id) is seen, False after."""
        ...

    async def forget(self, user: str) -> int:
        """Erase ``user``'s picks and the offers under their messages; how many went."""
        ...

    async def aclose(self) -> None: ...


class _Expiring:
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

    def pop(self, key: str) -> None:
        self._data.pop(key, None)

    def key_list(self) -> list[str]:
        return list(self._data)

    def clear(self) -> None:
        self._data.clear()


class InMemoryFollowUps:
    def __init__(
        self,
        ttl_s: float = FOLLOWUP_TTL_S,
        seen_ttl_s: float = SEEN_TTL_S,
        max_items: int = 100_000,
    ) -> None:
        self._offers = _Expiring(ttl_s, max_items)
        self._askers = _Expiring(ttl_s, max_items)  # interaction id -> whose message it was
        self._picks = _Expiring(ttl_s, max_items)
        self._seen = _Expiring(seen_ttl_s, max_items)

    async def offer(
        self, interaction_id: uuid.UUID, followup: FollowUp, asker: str | None = None
    ) -> None:
        self._offers.put(str(interaction_id), followup.to_json())
        if asker is not None:
            self._askers.put(str(interaction_id), asker)

    async def offered(self, interaction_id: uuid.UUID) -> FollowUp | None:
        raw = self._offers.get(str(interaction_id))
        return FollowUp.from_json(raw) if raw is not None else None

    async def set_pick(self, interaction_id: uuid.UUID, rater: str, choice: str | None) -> None:
        key = f"{interaction_id}:{rater}"
        if choice is None:
            self._picks.pop(key)
        else:
            self._picks.put(key, choice)

    async def picked(self, interaction_id: uuid.UUID, rater: str) -> str | None:
        return self._picks.get(f"{interaction_id}:{rater}")

    async def claim(self, key: str) -> bool:
        if self._seen.get(key) is not None:
            return False
        self._seen.put(key, "1")
        return True

    async def forget(self, user: str) -> int:
        offers = [iid for iid in self._askers.key_list() if self._askers.get(iid) == user]
        for iid in offers:
            self._offers.pop(iid)
            self._askers.pop(iid)
        picks = [key for key in self._picks.key_list() if key.endswith(f":{user}")]
        for key in picks:
            self._picks.pop(key)
        return len(offers) + len(picks)

    async def aclose(self) -> None:
        for part in (self._offers, self._askers, self._picks, self._seen):
            part.clear()


class RedisFollowUps:
    def __init__(
        self,
        url: str,
        prefix: str,
        ttl_s: int = FOLLOWUP_TTL_S,
        seen_ttl_s: int = SEEN_TTL_S,
    ) -> None:
        import redis.asyncio as aioredis  # slow to import, and only a Redis URL needs it

        self._redis = aioredis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self.prefix, self.ttl_s, self.seen_ttl_s = prefix, ttl_s, seen_ttl_s

    def _index(self, user: str) -> str:
        return f"{self.prefix}:user:{user}"

    async def offer(
        self, interaction_id: uuid.UUID, followup: FollowUp, asker: str | None = None
    ) -> None:
        key = f"{self.prefix}:offer:{interaction_id}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, followup.to_json(), ex=self.ttl_s)
                if asker is not None:
                    pipe.sadd(self._index(asker), key)
                    pipe.expire(self._index(asker), self.ttl_s)
                await pipe.execute()
        except Exception as exc:  # Redis down: the reply goes out; its follow-up cannot
            log.warning("follow-up choices not saved (%s)", type(exc).__name__)

    async def offered(self, interaction_id: uuid.UUID) -> FollowUp | None:
        try:
            raw = await self._redis.get(f"{self.prefix}:offer:{interaction_id}")
        except Exception as exc:
            log.warning("follow-up choices unavailable (%s)", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return FollowUp.from_json(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("follow-up choices of %s unreadable; treated as expired", interaction_id)
            return None

    async def set_pick(self, interaction_id: uuid.UUID, rater: str, choice: str | None) -> None:
        key = f"{self.prefix}:pick:{interaction_id}:{rater}"
        try:
            if choice is None:
                await self._redis.delete(key)
                return
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(key, choice, ex=self.ttl_s)
                pipe.sadd(self._index(rater), key)
                pipe.expire(self._index(rater), self.ttl_s)
                await pipe.execute()
        except Exception as exc:
            log.warning("follow-up pick not saved (%s)", type(exc).__name__)

    async def picked(self, interaction_id: uuid.UUID, rater: str) -> str | None:
        try:
            raw = await self._redis.get(f"{self.prefix}:pick:{interaction_id}:{rater}")
        except Exception as exc:
            log.warning("follow-up pick unavailable (%s)", type(exc).__name__)
            return None
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    async def claim(self, key: str) -> bool:
        try:
            return bool(
                await self._redis.set(f"{self.prefix}:seen:{key}", 1, nx=True, ex=self.seen_ttl_s)
            )
        except Exception as exc:
            log.warning("press dedupe unavailable (%s); handling it anyway", type(exc).__name__)
            return True

    async def forget(self, user: str) -> int:
        return await erase_indexed(self._redis, self._index(user), "follow-ups")

    async def aclose(self) -> None:
        await self._redis.aclose()


def make_followup_store(settings: Settings, platform: str) -> FollowUpStore:
    """``platform``'s follow-ups: on Redis under that bot's own prefix (:mod:`bots.common.keys`)."""
    if settings.redis_url:
        return RedisFollowUps(settings.redis_url, prefix=f"{state_prefix(platform)}:followup")
    return InMemoryFollowUps()
