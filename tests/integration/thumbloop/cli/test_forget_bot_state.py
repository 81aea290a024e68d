"""`thumbloop forget` erases what the bots keep about the user on Redis, written by the bots'
own stores, and leaves everyone else's; it says so when it cannot."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from bots.common.followup import FollowUp
from bots.common.followup_store import RedisFollowUps, make_followup_store
from bots.common.history import RedisHistory, make_history
from bots.common.keys import LEGACY_PREFIXES
from bots.slack.state import RedisSlackState
from bots.telegram.state import RedisReplyRefs
from tests.integration.servers import free_port
from tests.services import redis_url
from thumbloop.cli.main import cli
from thumbloop.contracts import Turn
from thumbloop.identity import hash_id
from thumbloop.settings import Settings

pytestmark = [pytest.mark.redis]

URL = redis_url(6)
SECRET = "forget-state-secret"
PLAN = FollowUp(("refund", "pending"), unhelpful=True, sentiment="negative", conversation="c")


def _h(platform: str, raw: str) -> str:
    return hash_id(SECRET, platform, raw)


async def _populate(platform: str, user: str, other: str, text: str) -> None:
    """What a bot of ``platform`` writes while ``user`` and ``other`` talk to it (and a pick
    kept where both bots kept them before each had its own prefix)."""
    settings = Settings(redis_url=URL)
    history, followups = make_history(settings, platform), make_followup_store(settings, platform)
    assert isinstance(history, RedisHistory) and isinstance(followups, RedisFollowUps)
    legacy = RedisFollowUps(URL, prefix=LEGACY_PREFIXES["followup"])
    await legacy.set_pick(uuid.uuid4(), user, "2")
    await legacy.aclose()
    try:
        group = _h(platform, "group-chat")
        await history.append(group, Turn(role="user", text=text), by=user)
        await history.append(group, Turn(role="user", text="what about my pin"), by=other)
        await history.append(user, Turn(role="user", text=text), by=user)  # a private chat
        mine, theirs = uuid.uuid4(), uuid.uuid4()
        await followups.offer(mine, PLAN, asker=user)
        await followups.offer(theirs, PLAN, asker=other)
        await followups.set_pick(theirs, user, "1")
        if platform == "telegram":
            refs = RedisReplyRefs(URL)
            await refs.put(group, 11, mine, asker=user)
            await refs.put(group, 12, theirs, asker=other)
            await refs.aclose()
        else:
            state = RedisSlackState(URL)
            await state.remember_reply(group, "1.1", mine, asker=user)
            await state.remember_reply(group, "1.2", theirs, asker=other)
            await state.aclose()
    finally:
        await history.aclose()
        await followups.aclose()


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_at: str | None) -> None:
    monkeypatch.setenv("THUMBLOOP_HOME", str(tmp_path))
    monkeypatch.setenv("THUMBLOOP_HMAC_SECRET", SECRET)
    monkeypatch.setenv("THUMBLOOP_BROKER_URL", f"sqla+sqlite:///{tmp_path}/broker.db")
    if redis_at is None:
        monkeypatch.delenv("THUMBLOOP_REDIS_URL", raising=False)
    else:
        monkeypatch.setenv("THUMBLOOP_REDIS_URL", redis_at)


@pytest.mark.parametrize("platform", ["telegram", "slack"])
def test_the_command_erases_the_bots_state_of_that_user_only(
    platform: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = redis.Redis.from_url(URL)
    raw.flushdb()
    user, other = _h(platform, "4242"), _h(platform, "7")
    secret = f"zq{uuid.uuid4().hex[:12]}"
    asyncio.run(_populate(platform, user, other, f"my card {secret} never came"))
    before = len(raw.keys("*"))
    _env(tmp_path, monkeypatch, URL)

    result = CliRunner().invoke(cli, ["forget", platform, "4242"])

    assert result.exit_code == 0, result.output
    assert "queued: forget" in result.output
    assert "bots' state on Redis erased: 2 history turns, 3 follow-up entries, 1 reply" in (
        result.output
    )
    keys = raw.keys("*")
    assert not [k for k in keys if user.encode() in k], "no key named by their digest"
    for key in keys:
        kind = raw.type(key)
        values = (
            raw.lrange(key, 0, -1)
            if kind == b"list"
            else raw.smembers(key)
            if kind == b"set"
            else [raw.get(key)]
        )
        assert not any(secret.encode() in v or user.encode() in v for v in values if v), key
    # the other user's turn, offer and reply reference are all still there
    turns = [v for k in keys if raw.type(k) == b"list" for v in raw.lrange(k, 0, -1)]
    assert any("what about my pin" in str(v) for v in turns)
    assert 0 < len(keys) < before
    assert any(other.encode() in k for k in keys)


def test_without_redis_it_says_the_state_is_out_of_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(tmp_path, monkeypatch, None)
    result = CliRunner().invoke(cli, ["forget", "telegram", "4242"])
    assert result.exit_code == 0, result.output
    assert "in each bot's memory only" in result.output


def test_an_unreachable_redis_is_an_error_not_a_silent_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(tmp_path, monkeypatch, f"redis://127.0.0.1:{free_port()}/0")
    result = CliRunner().invoke(cli, ["forget", "slack", "U0DORA001"])
    assert result.exit_code == 1
    assert "queued: forget" in result.output  # the database part still goes
    assert "not erased (Redis unavailable" in result.output and "run it again" in result.output
