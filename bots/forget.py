"""What the bots keep about a user on Redis, erased from outside a bot (``thumbloop forget``).

A user's own ``/forget`` erases this inside the bot (see the handlers' ``_erase_here``); an
operator acting on a request by email has no bot conversation to do it from. The stores are the
bots' own classes, so the keys erased are the ones the bots write. Without Redis each bot keeps
this state in its own memory only, out of an operator's reach; it ends with the process or its
TTL (docs/operations.md, "Forgetting a user").
"""

from __future__ import annotations

from dataclasses import dataclass

from bots.common.followup_store import RedisFollowUps
from bots.common.history import RedisHistory
from bots.common.keys import LEGACY_PREFIXES, PREFIXES, state_prefix
from bots.slack.state import RedisSlackState
from bots.telegram.state import RedisReplyRefs
from thumbloop.settings import Settings


@dataclass(frozen=True)
class Erased:
    turns: int  # history turns (their messages and the replies to them)
    followups: int  # picks, and the choices offered under their messages
    replies: int  # the index entries of the replies to them (vote and reaction lookups)


class RedisUnavailable(RuntimeError):
    pass


async def erase_bot_state(settings: Settings, platform: str, user: str) -> Erased | None:
    """Erase ``user`` (the HMAC digest the bots key by) from ``platform``'s bot state on
    Redis; ``None`` when no Redis is configured. Raises :class:`RedisUnavailable` when Redis
    does not answer, since the stores themselves only log a failed erase."""
    url = settings.redis_url
    if not url:
        return None
    import redis.asyncio as aioredis  # slow to import; only this path needs it

    probe = aioredis.Redis.from_url(url)
    try:
        await probe.ping()
    except Exception as exc:
        raise RedisUnavailable(f"{type(exc).__name__}: {exc}") from exc
    finally:
        await probe.aclose()

    turns = picks = 0
    # the bot's own keys, and where both bots kept these before each had a prefix of its own
    own = [state_prefix(platform)] if platform in PREFIXES else []
    places = [(f"{p}:history", f"{p}:followup") for p in own]
    places.append((LEGACY_PREFIXES["history"], LEGACY_PREFIXES["followup"]))
    for history_prefix, followup_prefix in places:
        history = RedisHistory(
            url, settings.bots.history_turns, settings.bots.history_ttl_s, history_prefix
        )
        followups = RedisFollowUps(url, prefix=followup_prefix)
        try:
            turns += await history.forget(user)
            if platform == "telegram":
                # a Telegram private chat has the user's id, so its history key is their digest;
                # older turns there carry no author, and that chat is all theirs
                await history.clear(user)
            picks += await followups.forget(user)
        finally:
            await history.aclose()
            await followups.aclose()
    replies = await _forget_replies(url, platform, user)
    return Erased(turns=turns, followups=picks, replies=replies)


async def _forget_replies(url: str, platform: str, user: str) -> int:
    """The index of the replies to ``user``'s messages, in the platform's own state."""
    kind = {"telegram": RedisReplyRefs, "slack": RedisSlackState}.get(platform)
    if kind is None:
        return 0  # the terminal chat keeps nothing on Redis
    store = kind(url)
    try:
        return await store.forget(user)
    finally:
        await store.aclose()
