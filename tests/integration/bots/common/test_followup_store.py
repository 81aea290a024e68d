"""The follow-up store on Redis: what the bots keep in production, keyed by interaction ids and
HMAC digests only, with TTLs; and a Redis that is down reads as "expired", never a crash."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis

from bots.common.followup import FollowUp
from bots.common.followup_store import RedisFollowUps
from tests.integration.servers import free_port
from tests.services import redis_url

pytestmark = [pytest.mark.redis]

URL = redis_url(10)
PLAN = FollowUp(("refund", "pending"), unhelpful=True, sentiment="negative", conversation="c")


def test_offers_picks_and_presses_round_trip_with_ttls() -> None:
    prefix = f"thumbloop:test-followup:{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(URL)
    iid, rater = uuid.uuid4(), "ab" * 32

    async def go() -> None:
        store = RedisFollowUps(URL, prefix=prefix, ttl_s=600, seen_ttl_s=60)
        try:
            assert await store.offered(iid) is None
            await store.offer(iid, PLAN)
            assert await store.offered(iid) == PLAN
            await store.set_pick(iid, rater, "1")
            assert await store.picked(iid, rater) == "1"
            assert await store.claim("tg:77") and not await store.claim("tg:77")
            keys = sorted(
                k.decode() if isinstance(k, bytes) else k for k in raw.keys(f"{prefix}:*")
            )
            assert keys == sorted(
                [
                    f"{prefix}:offer:{iid}",
                    f"{prefix}:pick:{iid}:{rater}",
                    f"{prefix}:seen:tg:77",
                    f"{prefix}:user:{rater}",  # the rater's keys, for /forget
                ]
            )
            assert 0 < raw.ttl(f"{prefix}:user:{rater}") <= 600
            assert 0 < raw.ttl(f"{prefix}:offer:{iid}") <= 600
            assert 0 < raw.ttl(f"{prefix}:seen:tg:77") <= 60
            await store.set_pick(iid, rater, None)
            assert await store.picked(iid, rater) is None
        finally:
            await store.aclose()

    try:
        asyncio.run(go())
    finally:
        for key in raw.keys(f"{prefix}:*"):
            raw.delete(key)
        raw.close()


def test_forget_erases_the_users_picks_and_the_offers_under_their_messages() -> None:
    prefix = f"thumbloop:test-followup:{uuid.uuid4().hex[:8]}"
    raw = redis.Redis.from_url(URL)
    asker, other = "a1" * 32, "b2" * 32
    theirs, someone_elses = uuid.uuid4(), uuid.uuid4()

    async def go() -> None:
        store = RedisFollowUps(URL, prefix=prefix, ttl_s=600, seen_ttl_s=60)
        try:
            await store.offer(theirs, PLAN, asker=asker)
            await store.offer(someone_elses, PLAN, asker=other)
            await store.set_pick(someone_elses, asker, "o")  # asker picked under other's reply
            await store.set_pick(theirs, other, "0")  # other picked under asker's reply
            await store.set_pick(someone_elses, other, "1")
            assert await store.forget(asker) == 2
            assert await store.offered(theirs) is None
            assert await store.picked(someone_elses, asker) is None
            assert await store.offered(someone_elses) == PLAN
            assert await store.picked(someone_elses, other) == "1"
            left = raw.keys(f"{prefix}:*")
            assert not any(asker.encode() in k for k in left), left
            assert await store.forget(asker) == 0  # twice: nothing left, no error
        finally:
            await store.aclose()

    try:
        asyncio.run(go())
    finally:
        for key in raw.keys(f"{prefix}:*"):
            raw.delete(key)
        raw.close()


def test_redis_down_reads_as_expired_and_lets_presses_through() -> None:
    async def go() -> None:
        store = RedisFollowUps(f"redis://127.0.0.1:{free_port()}/0", prefix="thumbloop:test")
        try:
            await store.offer(uuid.uuid4(), PLAN)  # logged, not raised
            assert await store.offered(uuid.uuid4()) is None
            assert await store.picked(uuid.uuid4(), "r") is None
            assert await store.claim("k") is True
            assert await store.forget("r") == 0  # logged, not raised
        finally:
            await store.aclose()

    asyncio.run(go())
