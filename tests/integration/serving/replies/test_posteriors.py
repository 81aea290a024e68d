"""Reply posteriors read from a real Redis: what the learning worker writes, read in one go."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis

from learning.worker.posterior_sync import PosteriorWriter
from serving.replies.posteriors import RedisPosteriors, posterior_index_key, posterior_key
from tests.services import redis_url

pytestmark = [pytest.mark.redis]

URL = redis_url(0)


@pytest.fixture
async def namespace() -> AsyncIterator[str]:
    ns = f"test-{uuid.uuid4().hex[:8]}"
    yield ns
    r = redis.Redis.from_url(URL)
    keys = [*r.scan_iter(match=posterior_key(ns, "*")), posterior_index_key(ns)]
    r.delete(*keys)
    r.close()


async def test_one_load_reads_every_intent_the_worker_wrote(namespace: str) -> None:
    writer = PosteriorWriter(URL, namespace)
    writer.apply("card_arrival", "card_arrival/1", None, 1)
    writer.apply("card_arrival", "card_arrival/2", None, -1)
    writer.apply("change_pin", "change_pin/1", None, 1)
    PosteriorWriter(URL, "another-model").apply("card_arrival", "card_arrival/1", None, -1)
    post = RedisPosteriors(URL, namespace, ttl_s=60)
    try:
        assert await post.get("card_arrival") == {
            "card_arrival/1": (2.0, 1.0),
            "card_arrival/2": (1.0, 2.0),
        }
        assert await post.get("change_pin") == {"change_pin/1": (2.0, 1.0)}
        assert await post.get("lost_or_stolen_card") == {}
        assert post.table.loads == 1
    finally:
        await post.close()
        redis.Redis.from_url(URL).delete(
            posterior_key("another-model", "card_arrival"), posterior_index_key("another-model")
        )


async def test_a_key_that_is_not_a_posterior_hash_spoils_nothing(namespace: str) -> None:
    PosteriorWriter(URL, namespace).apply("card_arrival", "card_arrival/1", None, 1)
    r = redis.Redis.from_url(URL)
    r.set(posterior_key(namespace, "stray"), "not a hash")
    r.hset(posterior_key(namespace, "garbled"), "change_pin/1|a", "lots")
    r.sadd(posterior_index_key(namespace), "stray", "garbled")
    r.close()
    post = RedisPosteriors(URL, namespace, ttl_s=60)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        assert await post.get("garbled") == {}
        assert post.table.failures == 0
    finally:
        await post.close()


async def test_a_model_name_with_pattern_characters_is_read_literally() -> None:
    name, other = "bank[eu]*", "banke*"
    PosteriorWriter(URL, name).apply("card_arrival", "card_arrival/1", None, 1)
    PosteriorWriter(URL, other).apply("card_arrival", "card_arrival/1", None, -1)
    post = RedisPosteriors(URL, name)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
    finally:
        await post.close()
        redis.Redis.from_url(URL).delete(
            posterior_key(name, "card_arrival"),
            posterior_key(other, "card_arrival"),
            posterior_index_key(name),
            posterior_index_key(other),
        )


async def test_a_vote_from_the_worker_shows_once_the_table_expires(namespace: str) -> None:
    writer = PosteriorWriter(URL, namespace)
    writer.apply("card_arrival", "card_arrival/1", None, 1)
    post = RedisPosteriors(URL, namespace, ttl_s=0.05)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        writer.apply("card_arrival", "card_arrival/1", 1, -1)  # the rater changed their mind
        for _ in range(100):
            await asyncio.sleep(0.01)
            if await post.get("card_arrival") == {"card_arrival/1": (1.0, 2.0)}:
                break
        assert await post.get("card_arrival") == {"card_arrival/1": (1.0, 2.0)}
    finally:
        await post.close()


async def test_an_update_through_the_store_shows_at_once(namespace: str) -> None:
    post = RedisPosteriors(URL, namespace, ttl_s=60)  # only forgetting makes it show
    try:
        assert await post.get("card_arrival") == {}
        await post.update("card_arrival", "card_arrival/2", +1, weight=3)
        assert await post.get("card_arrival") == {"card_arrival/2": (4.0, 1.0)}
        assert post.table.loads == 2
    finally:
        await post.close()


async def test_redis_down_means_uniform_priors_and_a_cool_down() -> None:
    post = RedisPosteriors("redis://127.0.0.1:1/0", "thumbloop")
    try:
        assert await post.get("card_arrival") == {}
        assert post.table.failures == 1
        assert await post.get("change_pin") == {}  # cooling down: no second try
        assert post.table.failures == 1 and post.table.loads == 1
    finally:
        await post.close()


async def test_hashes_from_before_the_index_are_found_once_and_indexed(namespace: str) -> None:
    """Posteriors written before the index set existed (a plain HINCRBYFLOAT): one SCAN finds
    them and adds them to the index; after that, reads use the index only."""
    r = redis.Redis.from_url(URL, decode_responses=True)
    r.hincrbyfloat(posterior_key(namespace, "card_arrival"), "card_arrival/1|a", 2.0)
    r.hincrbyfloat(posterior_key(namespace, "change_pin"), "change_pin/1|b", 1.0)
    post = RedisPosteriors(URL, namespace, ttl_s=0.01)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (3.0, 1.0)}
        assert await post.get("change_pin") == {"change_pin/1": (1.0, 2.0)}
        assert set(r.smembers(posterior_index_key(namespace))) == {
            "card_arrival",
            "change_pin",
        }
        PosteriorWriter(URL, namespace).apply("lost_or_stolen_card", "lost/1", None, 1)
        for _ in range(100):
            await asyncio.sleep(0.02)
            if await post.get("lost_or_stolen_card"):
                break
        assert await post.get("lost_or_stolen_card") == {"lost/1": (2.0, 1.0)}
        assert post.scans == 1 and post.table.loads > 1
    finally:
        await post.close()
        r.close()


async def test_a_model_with_an_index_is_not_scanned(namespace: str) -> None:
    PosteriorWriter(URL, namespace).apply("card_arrival", "card_arrival/1", None, 1)
    post = RedisPosteriors(URL, namespace)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        assert post.scans == 0
    finally:
        await post.close()
