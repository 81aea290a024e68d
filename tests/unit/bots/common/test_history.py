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


async def test_forget_removes_the_users_turns_from_every_conversation() -> None:
    h = InMemoryHistory(max_turns=10, ttl_s=60)
    await h.append(
        "private", Turn(role="user", text="a1"), Turn(role="assistant", text="r1"), by="A"
    )
    await h.append("group", Turn(role="user", text="a2"), Turn(role="assistant", text="r2"), by="A")
    await h.append("group", Turn(role="user", text="b1"), Turn(role="assistant", text="r3"), by="B")
    await h.append("group", Turn(role="assistant", text="unattributed"))
    assert await h.forget("A") == 4
    assert await h.get("private") == []
    assert [t.text for t in await h.get("group")] == ["b1", "r3", "unattributed"]
    assert await h.forget("A") == 0
