"""The in-process follow-up store of the embedded default: offers, picks, presses seen, bounded
and expiring (the Redis one: tests/integration/bots/common/test_followup_store.py)."""

from __future__ import annotations

import asyncio
import uuid

from bots.common.followup import FollowUp
from bots.common.followup_store import InMemoryFollowUps

PLAN = FollowUp(("refund",), unhelpful=True, sentiment="negative", conversation="c")


def test_offers_and_picks_are_kept_per_interaction_and_rater() -> None:
    async def go() -> None:
        store = InMemoryFollowUps()
        iid = uuid.uuid4()
        assert await store.offered(iid) is None
        await store.offer(iid, PLAN)
        assert await store.offered(iid) == PLAN
        await store.set_pick(iid, "r1", "0")
        assert (await store.picked(iid, "r1"), await store.picked(iid, "r2")) == ("0", None)
        await store.set_pick(iid, "r1", None)
        assert await store.picked(iid, "r1") is None
        assert await store.claim("press-1") is True
        assert await store.claim("press-1") is False
        assert await store.claim("press-2") is True

    asyncio.run(go())


def test_the_store_is_bounded_and_entries_expire() -> None:
    async def go() -> None:
        small = InMemoryFollowUps(max_items=2)
        first, *rest = [uuid.uuid4() for _ in range(3)]
        for iid in (first, *rest):
            await small.offer(iid, PLAN)
        assert await small.offered(first) is None, "the oldest goes first"
        assert all([await small.offered(i) == PLAN for i in rest])
        expired = InMemoryFollowUps(ttl_s=-1, seen_ttl_s=-1)
        await expired.offer(first, PLAN)
        assert await expired.offered(first) is None
        assert await expired.claim("k") and await expired.claim("k")

    asyncio.run(go())


def test_forget_erases_the_users_picks_and_the_offers_under_their_messages() -> None:
    async def go() -> None:
        store = InMemoryFollowUps()
        theirs, someone_elses = uuid.uuid4(), uuid.uuid4()
        await store.offer(theirs, PLAN, asker="alice")
        await store.offer(someone_elses, PLAN, asker="bob")
        await store.set_pick(someone_elses, "alice", "o")
        await store.set_pick(someone_elses, "bob", "0")
        assert await store.forget("alice") == 2
        assert await store.offered(theirs) is None
        assert await store.picked(someone_elses, "alice") is None
        assert await store.offered(someone_elses) == PLAN
        assert await store.picked(someone_elses, "bob") == "0"
        assert await store.forget("alice") == 0

    asyncio.run(go())
