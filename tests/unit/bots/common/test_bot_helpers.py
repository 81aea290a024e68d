import uuid

import pytest

from bots.common.history import InMemoryHistory
from bots.common.signing import InvalidVoteToken, sign_vote, verify_vote
from thumbloop.contracts import Turn


def test_vote_token_round_trip_and_fits_telegram() -> None:
    iid = uuid.uuid4()
    for value in (1, -1):
        token = sign_vote("k", iid, value)
        assert len(token.encode()) <= 64
        assert verify_vote("k", token) == (iid, value)


@pytest.mark.parametrize("mutate", ["other-key", "flip", "garbage", "truncate"])
def test_forged_tokens_are_refused(mutate: str) -> None:
    iid = uuid.uuid4()
    token = sign_vote("k", iid, 1)
    if mutate == "other-key":
        bad = sign_vote("not-k", iid, 1)
    elif mutate == "flip":
        bad = token.replace(".u.", ".d.")
    elif mutate == "garbage":
        bad = "hello"
    else:
        bad = token[:-3]
    with pytest.raises(InvalidVoteToken):
        verify_vote("k", bad)


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
