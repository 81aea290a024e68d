"""Which interaction a bot reply carries, remembered in process."""

from __future__ import annotations

import uuid

from bots.telegram.state import InMemoryReplyRefs


async def test_in_memory_reply_refs_expire_and_stay_bounded() -> None:
    refs = InMemoryReplyRefs(ttl_s=60, max_items=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await refs.put("chat", 1, a)
    await refs.put("chat", 2, b)
    await refs.put("chat", 3, c)
    assert await refs.get("chat", 1) is None
    assert await refs.get("chat", 3) == c and await refs.get("other", 3) is None
    expired = InMemoryReplyRefs(ttl_s=-1)
    await expired.put("chat", 1, a)
    assert await expired.get("chat", 1) is None
