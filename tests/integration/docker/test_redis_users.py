"""Each compose service's Redis user, on a private Redis with the generated ACL file: the
service's own code runs with its URL (the learning tasks, serving's posterior read, the bots'
stores, the retrain lock, Celery's result backend) and logs no Redis error, and the same user
is refused (NOPERM) every key and command outside its part: no service reaches another's keys,
and none can push onto a Celery queue in Redis or wipe the database."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from bots.common.followup import FollowUp
from bots.common.followup_store import RedisFollowUps, make_followup_store
from bots.common.history import RedisHistory, make_history
from bots.slack.state import RedisSlackState
from bots.telegram.state import RedisReplyRefs
from learning.retrain.lock import retrain_lock
from learning.worker.posterior_sync import PosteriorWriter, reconcile
from learning.worker.tasks import register_tasks
from serving.replies.posteriors import RedisPosteriors, posterior_index_key, posterior_key
from tests.integration.docker.conftest import local_redis
from tests.integration.learning.worker.conftest import interaction, user, vote
from tests.integration.servers import fresh_postgres_db
from thumbloop.contracts import Turn
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope, upgrade
from thumbloop.task_names import (
    FORGET_USER,
    RECORD_INTERACTION,
    RECORD_VOTE,
    forget_payload,
    interaction_payload,
    vote_payload,
)

MODEL = "thumbloop"  # compose's THUMBLOOP_MODEL_NAME
INTENT = "card_arrival"
CHAT = "ab" * 32  # hashed ids, as the bots write them
USER = "cd" * 32
# a key of every part, and what writing it takes; each service may touch only its own
KEYS = {
    "posterior": ("HSET", posterior_key(MODEL, INTENT), "card_arrival/1|a", "5"),
    "tg history": ("RPUSH", f"thumbloop:tg:history:{CHAT}", "{}"),
    "tg followup": ("SET", f"thumbloop:tg:followup:offer:{uuid.uuid4()}", "{}"),
    "telegram": ("SET", f"thumbloop:tg:ref:{CHAT}:1", str(uuid.uuid4())),
    "slack history": ("RPUSH", f"thumbloop:slack:history:slack:{CHAT}:1.0", "{}"),
    "slack followup": ("SET", f"thumbloop:slack:followup:offer:{uuid.uuid4()}", "{}"),
    "slack": ("SET", f"thumbloop:slack:reply:{CHAT}:1.0", str(uuid.uuid4())),
    # where both bots kept history and follow-ups before each had its own prefix
    "shared history": ("RPUSH", f"thumbloop:history:{CHAT}", "{}"),
    "shared followup": ("SET", f"thumbloop:followup:offer:{uuid.uuid4()}", "{}"),
    "lock": ("SET", f"thumbloop:lock:retrain:{MODEL}", "token"),
    "result": ("SET", "celery-task-meta-planted", "{}"),
    # what a Redis broker's queues were: the task list and kombu's binding set
    "celery queue": ("LPUSH", "thumbloop", '{"task": "planted"}'),
    "kombu binding": ("SADD", "_kombu.binding.thumbloop", "planted"),
}
OWN = {
    "serving": set(),  # reads only (posteriors: test_serving_reads_what_the_worker_writes)
    "worker": {"posterior", "result"},
    "beat": {"posterior", "result"},
    "trainer": {"lock", "result"},
    "telegram": {"tg history", "tg followup", "telegram"},
    "slack": {"slack history", "slack followup", "slack"},
}
# commands no service sends: a user allowed them could read or wreck everything
NEVER = [("KEYS", "*"), ("FLUSHDB",), ("CONFIG", "GET", "*"), ("PUBLISH", "thumbloop", "x")]


@pytest.fixture
def url(private_redis: int, secrets: dict[str, str]) -> Callable[[str], str]:
    """url("worker_redis_url"): that secret, pointed at the private Redis."""
    return lambda name: local_redis(secrets[name], private_redis)


@pytest.fixture
def pg_url() -> Iterator[str]:
    with fresh_postgres_db() as db:
        upgrade(db)
        yield db


def _refused(client: redis.Redis, *command: Any) -> bool:
    try:
        client.execute_command(*command)
    except redis.exceptions.NoPermissionError:
        return True
    return False


def _no_redis_errors(caplog: pytest.LogCaptureFixture) -> None:
    """The stores below log Redis trouble and carry on: a refused command shows only there."""
    trouble = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not trouble, trouble


@pytest.mark.parametrize("service", sorted(OWN))
def test_each_user_writes_only_its_own_keys(service: str, url: Callable[[str], str]) -> None:
    client = redis.Redis.from_url(url(f"{service}_redis_url"))
    for part, command in KEYS.items():
        if part in OWN[service]:
            assert not _refused(client, *command), (service, part)
        else:
            assert _refused(client, *command), f"{service} may write {part}: {command}"
    for command in NEVER:
        assert _refused(client, *command), (service, command)
    client.close()


@pytest.mark.postgres
def test_serving_reads_what_the_worker_writes(
    url: Callable[[str], str], pg_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    app = Celery(f"test-{uuid.uuid4().hex[:6]}", set_as_current=False)
    config = Settings(
        home=tmp_path, database_url=pg_url, redis_url=url("worker_redis_url"), model_name=MODEL
    )
    register_tasks(app, config)

    def run(task: str, payload: dict[str, Any]) -> Any:
        return app.tasks[task].apply(kwargs=payload).get()

    item = interaction("alice", "where is my card")
    assert run(RECORD_INTERACTION, interaction_payload(item)) == "stored"
    assert run(RECORD_VOTE, vote_payload(vote(item, "bob", 1))) == "stored"
    worker = PosteriorWriter(url("worker_redis_url"), MODEL)
    assert worker.read(INTENT) == {"card_arrival/1|a": 1.0}

    async def served() -> tuple[dict[str, tuple[float, float]], int]:
        serving = RedisPosteriors(url("serving_redis_url"), MODEL)
        try:
            return await serving.get(INTENT), serving.scans
        finally:
            await serving.close()

    assert asyncio.run(served()) == ({"card_arrival/1": (2.0, 1.0)}, 0)
    # hashes written before the index existed: serving finds them once and indexes them
    worker_client = redis.Redis.from_url(url("worker_redis_url"))
    worker_client.delete(posterior_index_key(MODEL))
    assert asyncio.run(served()) == ({"card_arrival/1": (2.0, 1.0)}, 1)
    assert worker_client.smembers(posterior_index_key(MODEL)) == {INTENT.encode()}
    worker_client.close()
    # beat's reconcile and a forget's resync rewrite the hashes, as the beat user and the worker's
    engine = make_engine(pg_url)
    beat = PosteriorWriter(url("beat_redis_url"), MODEL)
    with session_scope(engine) as s:
        assert reconcile(s, beat) == 1
    engine.dispose()
    forgotten = run(FORGET_USER, forget_payload(user("bob"), "telegram"))
    assert isinstance(forgotten, dict) and forgotten["votes"] == 1
    assert worker.read(INTENT) == {}
    _no_redis_errors(caplog)
    serving = redis.Redis.from_url(url("serving_redis_url"))
    assert _refused(serving, "DEL", posterior_key(MODEL, INTENT))
    assert _refused(serving, "HINCRBYFLOAT", posterior_key(MODEL, INTENT), "x|a", "100")
    serving.close()
    for writer in (worker, beat):
        writer.close()


def test_only_the_trainer_takes_the_retrain_lock(url: Callable[[str], str]) -> None:
    trainer = Settings(redis_url=url("trainer_redis_url"), model_name=MODEL)
    with retrain_lock(trainer) as held:
        assert held
        with retrain_lock(trainer) as again:
            assert not again  # single flight
    with retrain_lock(trainer) as held:
        assert held  # released by its script, as the trainer user
    for other in ("worker", "beat", "serving", "telegram", "slack"):
        with (
            pytest.raises(redis.exceptions.NoPermissionError),
            retrain_lock(Settings(redis_url=url(f"{other}_redis_url"), model_name=MODEL)),
        ):
            pass


@pytest.mark.parametrize("service", ["worker", "trainer", "beat"])
def test_celery_services_store_task_results(service: str, url: Callable[[str], str]) -> None:
    backend = Celery(backend=url(f"{service}_result_url"), set_as_current=False).backend
    task_id = str(uuid.uuid4())
    backend.store_result(task_id, {"stored": 1}, "SUCCESS")
    assert backend.get_task_meta(task_id)["status"] == "SUCCESS"
    backend.store_result(task_id, None, "FAILURE")  # a late duplicate never overwrites it
    assert backend.get_task_meta(task_id)["result"] == {"stored": 1}


def _history(redis_url: str, bot: str) -> Callable[[], Any]:
    async def check() -> None:
        history = make_history(Settings(redis_url=redis_url), bot)
        assert isinstance(history, RedisHistory)
        try:
            await history.append(CHAT, Turn(role="user", text="hi"), by=USER)
            await history.append(CHAT, Turn(role="assistant", text="hello"))
            assert [t.text for t in await history.get(CHAT)] == ["hi", "hello"]
            assert await history.forget(USER) == 1
            assert [t.text for t in await history.get(CHAT)] == ["hello"]
            await history.clear(CHAT)
        finally:
            await history.aclose()

    return check


def _followups(redis_url: str, bot: str) -> Callable[[], Any]:
    async def check() -> None:
        store = make_followup_store(Settings(redis_url=redis_url), bot)
        assert isinstance(store, RedisFollowUps)
        iid, plan = uuid.uuid4(), FollowUp(("refund",), unhelpful=True)
        try:
            await store.offer(iid, plan, asker=USER)
            assert await store.offered(iid) == plan
            await store.set_pick(iid, USER, "0")
            assert await store.picked(iid, USER) == "0"
            assert await store.claim(f"press-{iid}") and not await store.claim(f"press-{iid}")
            assert await store.forget(USER) == 2  # the offer under their message, their pick
            assert await store.offered(iid) is None
        finally:
            await store.aclose()

    return check


def _telegram_refs(redis_url: str, bot: str = "telegram") -> Callable[[], Any]:
    async def check() -> None:
        refs = RedisReplyRefs(redis_url)
        iid = uuid.uuid4()
        try:
            await refs.put(CHAT, 7, iid, asker=USER)
            assert await refs.get(CHAT, 7) == iid
            assert await refs.forget(USER) == 1
            assert await refs.get(CHAT, 7) is None
        finally:
            await refs.aclose()

    return check


def _slack_state(redis_url: str, bot: str = "slack") -> Callable[[], Any]:
    async def check() -> None:
        state = RedisSlackState(redis_url)
        iid = uuid.uuid4()
        try:
            assert await state.claim("event-1") and not await state.claim("event-1")
            await state.remember_reply(CHAT, "1.0", iid, asker=USER)
            assert await state.reply_for(CHAT, "1.0") == iid
            assert await state.forget(USER) == 1
            assert await state.reply_for(CHAT, "1.0") is None
        finally:
            await state.aclose()

    return check


@pytest.mark.parametrize(
    ("bot", "own"), [("telegram", _telegram_refs), ("slack", _slack_state)], ids=["tg", "slack"]
)
def test_each_bot_keeps_its_state_and_forgets_a_user(
    bot: str,
    own: Callable[[str, str], Callable[[], Any]],
    url: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    for check in (_history, _followups, own):
        asyncio.run(check(url(f"{bot}_redis_url"), bot)())
    _no_redis_errors(caplog)
    # nothing of the other bot's is this one's: its platform state, its conversations' history,
    # the follow-ups under its replies
    other_bot = "slack" if bot == "telegram" else "telegram"
    other_state = _slack_state if bot == "telegram" else _telegram_refs
    for check in (_history, _followups, other_state):
        caplog.clear()
        with pytest.raises(AssertionError):
            asyncio.run(check(url(f"{bot}_redis_url"), other_bot)())
        assert any("NoPermissionError" in r.getMessage() for r in caplog.records), check
