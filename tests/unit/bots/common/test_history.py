"""The short per-conversation history kept in process."""

from bots.common.history import InMemoryHistory
from thumbloop.contracts import Turn


async def test_in_memory_history_keeps_last_turns() -> None:
    h = InMemoryHistory(max_turns=3, ttl_s=60)
    for i in range(5):
        await h.append("c", Turn(role="user", text=f"m{i}"))
    assert [t.text for t in await h.get("c")] == ["m2", "m3", "m4"]
    await h.clear("c")
    assert await h.get("c") == []
    expired = InMemoryHistory(max_turns=3, ttl_s=-1)
    await expired.append("c", Turn(role="user", text="x"))
    assert await expired.get("c") == []
