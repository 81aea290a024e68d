"""Per-user key indexes in Redis: the bots keep, for each user, a set naming the keys that hold
what the user said or chose, so /forget can erase them without scanning the keyspace."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


async def erase_indexed(redis: Any, index: str, what: str) -> int:
    """Delete every key the set ``index`` names, then the set; how many keys went. A failure is
    logged (naming ``what``) and counts nothing: what is left still expires with its TTL."""
    try:
        keys = list(await redis.smembers(index))
        removed = int(await redis.delete(*keys)) if keys else 0
        await redis.delete(index)
    except Exception as exc:
        log.error("%s of a forgotten user not erased (%s)", what, type(exc).__name__)
        return 0
    return removed
