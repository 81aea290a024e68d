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


async def test_forget_drops_the_references_of_replies_to_the_users_messages() -> None:
    refs = InMemoryReplyRefs(ttl_s=60)
    hers, his = uuid.uuid4(), uuid.uuid4()
    await refs.put("group", 1, hers, asker="cora")
    await refs.put("group", 2, his, asker="dan")
    await refs.put("cora-dm", 3, uuid.uuid4(), asker="cora")
    assert await refs.forget("cora") == 2
    assert await refs.get("group", 1) is None and await refs.get("cora-dm", 3) is None
    assert await refs.get("group", 2) == his
    assert await refs.forget("cora") == 0
