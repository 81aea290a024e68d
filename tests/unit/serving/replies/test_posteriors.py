"""Reply posteriors counted from the votes table: the embedded default learns reply choice too."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from pathlib import Path

import pytest

from serving.replies.posteriors import InMemoryPosteriors, SqlPosteriors
from serving.replies.strategies import TemplateReplies
from tests.unit.serving.replies.test_strategies import RESPONSES, ctx
from thumbloop.contracts import Interaction, Vote
from thumbloop.store.db import make_engine, session_scope, upgrade, upsert_interaction, upsert_vote


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A migrated SQLite database, as `thumbloop up` leaves it."""
    db = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(db)
    return db


def _rate(url: str, response_id: str, values: list[int], intent: str = "card_arrival") -> None:
    engine = make_engine(url)
    with session_scope(engine) as s:
        for i, value in enumerate(values):
            item = Interaction(
                interaction_id=uuid.uuid4(),
                platform="cli",
                user="a" * 64,
                conversation="c" * 64,
                text="where is my card",
                intent=intent,
                intent_confidence=0.9,
                sentiment="neutral",
                response_id=response_id,
                reply_text="...",
                model_version="thumbloop/1",
            )
            upsert_interaction(s, item)
            for rater in (
                f"{i:064x}",
                f"{i:064x}",
            ):  # a repeated vote by the same rater counts once
                upsert_vote(
                    s,
                    Vote(
                        interaction_id=item.interaction_id, rater=rater, value=value, platform="cli"
                    ),
                )
    engine.dispose()


async def test_posteriors_count_the_stored_votes(url: str) -> None:
    _rate(url, "card_arrival/1", [1, 1, -1])
    _rate(url, "card_arrival/2", [-1, -1])
    _rate(url, "clarify+clarify:card_arrival|change_pin", [1])  # no variant to learn
    _rate(url, "change_pin/1", [1], intent="change_pin")
    post = SqlPosteriors(url, ttl_s=0)
    try:
        assert await post.get("card_arrival") == {
            "card_arrival/1": (3.0, 2.0),
            "card_arrival/2": (1.0, 3.0),
        }
        assert await post.get("change_pin") == {"change_pin/1": (2.0, 1.0)}
        assert await post.get("lost_or_stolen_card") == {}
    finally:
        await post.close()


async def test_thompson_sampling_follows_votes_stored_in_the_database(url: str) -> None:
    _rate(url, "card_arrival/2", [1] * 30)
    _rate(url, "card_arrival/1", [-1] * 30)
    post = SqlPosteriors(url)
    try:
        s = TemplateReplies(RESPONSES, post, random.Random(1))
        picks = [(await s.reply(ctx())).response_id for _ in range(200)]
    finally:
        await post.close()
    assert picks.count("card_arrival/2") > 190


async def test_a_database_without_tables_means_uniform_priors(tmp_path: Path) -> None:
    post = SqlPosteriors(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    try:
        assert await post.get("card_arrival") == {}
        assert post.table.failures == 1
        assert await post.get("card_arrival") == {}  # cooling down: no second query
        assert post.table.failures == 1
    finally:
        await post.close()


async def test_concurrent_requests_for_an_uncounted_intent_share_one_query(url: str) -> None:
    _rate(url, "card_arrival/1", [1, 1])
    post = SqlPosteriors(url, ttl_s=60)
    try:
        got = await asyncio.gather(*(post.get("card_arrival") for _ in range(32)))
        assert got == [{"card_arrival/1": (3.0, 1.0)}] * 32
        assert post.table.loads == 1
    finally:
        await post.close()


async def test_one_query_counts_every_intent(url: str) -> None:
    _rate(url, "card_arrival/1", [1, 1])
    _rate(url, "change_pin/1", [-1], intent="change_pin")
    post = SqlPosteriors(url, ttl_s=60)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (3.0, 1.0)}
        assert await post.get("change_pin") == {"change_pin/1": (1.0, 2.0)}
        assert await post.get("lost_or_stolen_card") == {}
        assert post.table.loads == 1
    finally:
        await post.close()


async def test_a_vote_on_one_intent_leaves_the_others_counted(url: str) -> None:
    """update() forgets only its own intent: the others answer from the table at once while
    the forgotten one waits for a fresh count."""
    _rate(url, "card_arrival/1", [1])
    _rate(url, "change_pin/1", [1], intent="change_pin")
    post = SqlPosteriors(url, ttl_s=60)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        _rate(url, "change_pin/1", [-1], intent="change_pin")
        await post.update("change_pin", "change_pin/1", -1)
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        assert post.table.loads == 1
        assert await post.get("change_pin") == {"change_pin/1": (2.0, 2.0)}
        assert post.table.loads == 2
    finally:
        await post.close()


async def test_expired_counts_are_served_while_one_query_refreshes_them(url: str) -> None:
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url, ttl_s=0.05)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        _rate(url, "card_arrival/1", [-1, -1])
        await asyncio.sleep(0.1)  # the counts have expired
        # the old counts answer at once, each request alike; one query refreshes them
        stale = await asyncio.gather(*(post.get("card_arrival") for _ in range(8)))
        assert stale == [{"card_arrival/1": (2.0, 1.0)}] * 8
        assert post.table.loads == 2
        for _ in range(100):  # the refresh lands in the background
            await asyncio.sleep(0.01)
            if await post.get("card_arrival") == {"card_arrival/1": (2.0, 3.0)}:
                break
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 3.0)}
    finally:
        await post.close()


def _hold_first_load(post: SqlPosteriors) -> tuple[threading.Event, threading.Event]:
    """Make the first load wait, once it has read the votes, until ``release`` is set;
    ``reading`` is set when it has read them."""
    reading, release = threading.Event(), threading.Event()
    count = post._count

    def slow_first() -> dict[str, dict[str, tuple[float, float]]]:
        value = count()
        if not reading.is_set():
            reading.set()
            release.wait(5)
        return value

    post._count = slow_first  # type: ignore[method-assign]
    return reading, release


async def test_a_vote_during_a_refresh_is_not_hidden_by_it(url: str) -> None:
    """A refresh that read the counts before a vote arrived neither caches them nor answers
    requests that come after the vote."""
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url)
    reading, release = _hold_first_load(post)
    try:
        first = asyncio.create_task(post.get("card_arrival"))
        await asyncio.to_thread(reading.wait, 5)  # the first query has read one 👍
        _rate(url, "card_arrival/1", [-1])
        await post.update("card_arrival", "card_arrival/1", -1)
        later = asyncio.create_task(post.get("card_arrival"))
        release.set()
        assert await first == {"card_arrival/1": (2.0, 1.0)}  # asked before the vote
        assert await later == {"card_arrival/1": (2.0, 2.0)}
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 2.0)}
    finally:
        release.set()
        await post.close()


async def test_close_lets_a_running_query_answer_its_requests(url: str) -> None:
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url)
    count = post._count

    def slow() -> dict[str, dict[str, tuple[float, float]]]:
        time.sleep(0.2)
        return count()

    post._count = slow  # type: ignore[method-assign]
    waiting = asyncio.create_task(post.get("card_arrival"))
    await asyncio.sleep(0.05)  # the query is running
    await post.close()
    assert waiting.done() and waiting.result() == {"card_arrival/1": (2.0, 1.0)}


async def test_the_last_counts_are_served_while_the_database_fails(url: str) -> None:
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url, ttl_s=0.01)
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}

        def broken() -> dict[str, dict[str, tuple[float, float]]]:
            raise RuntimeError("database is locked")

        post._count = broken  # type: ignore[method-assign]
        await asyncio.sleep(0.05)  # stale: the next request starts a load, which fails
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        for _ in range(100):
            await asyncio.sleep(0.01)
            if post.table.failures:
                break
        assert post.table.failures == 1
        # cooling down: the last counts, no new query
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        assert post.table.loads == 2
    finally:
        await post.close()


async def test_a_vote_on_another_intent_during_a_load_does_not_waste_it(url: str) -> None:
    """The load still lands for every intent; only the voted intent waits for a newer one."""
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url, ttl_s=60)
    reading, release = _hold_first_load(post)
    try:
        first = asyncio.create_task(post.get("card_arrival"))
        await asyncio.to_thread(reading.wait, 5)
        _rate(url, "change_pin/1", [1], intent="change_pin")
        await post.update("change_pin", "change_pin/1", 1)
        release.set()
        assert await first == {"card_arrival/1": (2.0, 1.0)}
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        assert post.table.loads == 1  # the load that began before the vote was kept
        assert await post.get("change_pin") == {"change_pin/1": (2.0, 1.0)}
        assert post.table.loads == 2
    finally:
        release.set()
        await post.close()


async def test_a_table_left_alone_too_long_is_reloaded_before_it_answers(url: str) -> None:
    """After a quiet spell the first request gets today's counts, not the last ones read."""
    _rate(url, "card_arrival/1", [1])
    post = SqlPosteriors(url, ttl_s=0.01, max_stale_s=0.05)  # a 30 s quiet spell, shortened
    try:
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 1.0)}
        _rate(url, "card_arrival/1", [-1, -1])
        await asyncio.sleep(0.1)
        assert await post.get("card_arrival") == {"card_arrival/1": (2.0, 3.0)}
    finally:
        await post.close()


async def test_a_count_below_zero_reads_as_no_votes() -> None:
    store = InMemoryPosteriors()
    await store.update("card_arrival", "card_arrival/1", 1, weight=-2.0)  # a lost +1, then -1 -1
    await store.update("card_arrival", "card_arrival/1", -1, weight=3.0)
    a, b = (await store.get("card_arrival"))["card_arrival/1"]
    assert (a, b) == (1.0, 4.0)
    assert 0.0 <= random.betavariate(a, b) <= 1.0
