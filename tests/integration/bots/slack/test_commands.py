"""The /thumbloop command through the whole loop: help, privacy, and forget (the asking user's
rows only, and what the bot keeps about them: their turns in a shared thread's history, their
picks and the choices under their messages)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
import redis

from bots.common.signing import verify_vote
from bots.slack.texts import DOWN_ACTION, FOLLOWUP_BLOCK_ID, UP_ACTION
from tests.integration.bots.slack.loop import (
    ALICE,
    KEYS,
    REDIS_URL,
    Running,
    Worker,
    h,
    interactions,
    new_ts,
    say,
    votes,
    wait_until,
)
from tests.integration.fakes.slack_api import BOT_USER_ID, Call, FakeSlackApi

pytestmark = [pytest.mark.redis]


def test_slash_command_help_privacy_and_forget(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    carol, dm = "U0CAROL01", "D0CAROL01"
    for text in ("", "help", "HELP me"):
        resp = running.slack.command(text, carol)
        assert resp.status_code == 200 and "/thumbloop forget" in resp.json()["text"]
    privacy = running.slack.command("privacy", carol).json()["text"]
    assert "hash" in privacy
    unknown = running.slack.command("<dance>", carol).json()["text"]
    assert "&lt;dance&gt;" in unknown and "/thumbloop help" in unknown

    _, call = say(running, fake, "what is my exchange rate", user=carol, channel=dm)
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
    running.slack.block_actions(carol, dm, call.as_message(), call.button(UP_ACTION))
    wait_until(lambda: votes(worker.engine, str(iid)), "carol's vote")
    wait_until(lambda: interactions(worker.engine, h(carol)), "carol's interaction")
    alice_rows = len(interactions(worker.engine, h(ALICE)))

    resp = running.slack.command("forget", carol)
    assert resp.status_code == 200 and "deleted" in resp.json()["text"]
    wait_until(lambda: not interactions(worker.engine, h(carol)), "carol's rows gone")
    assert votes(worker.engine, str(iid)) == []
    assert len(interactions(worker.engine, h(ALICE))) == alice_rows  # others untouched

    bad = running.slack.post("command=/thumbloop&text=forget&user_id=U1", "x", secret="nope")
    assert bad.status_code == 401


def mention(
    running: Running, fake: FakeSlackApi, text: str, user: str, channel: str, thread: str | None
) -> tuple[str, Call]:
    """An @-mention in a channel (in ``thread``, if given); the ts and the bot's reply."""
    before = fake.count("chat.postMessage")
    ts = new_ts()
    event = {
        "type": "app_mention",
        "channel": channel,
        "user": user,
        "text": f"<@{BOT_USER_ID}> {text}",
        "ts": ts,
        "event_ts": ts,
    }
    if thread:
        event["thread_ts"] = thread
    assert running.slack.event(event).status_code == 200
    return ts, fake.wait_for("chat.postMessage", before + 1)[before]


def test_forget_erases_the_users_turns_in_a_shared_thread_and_their_follow_ups(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    dora, channel = "U0DORA001", "C0TEAM001"
    secret = f"zq{uuid.uuid4().hex[:12]}"
    r: Any = redis.Redis.from_url(REDIS_URL)
    thread, call = mention(running, fake, f"my card {secret} never came", dora, channel, None)
    _, alices = mention(running, fake, "what about my pin", ALICE, channel, thread)  # later
    history = r.keys("thumbloop:slack:history:slack:*")
    shared = next(k for k in history if any(secret.encode() in v for v in r.lrange(k, 0, -1)))
    assert len(r.lrange(shared, 0, -1)) == 4

    updates = fake.count("chat.update")
    running.slack.block_actions(dora, channel, call.as_message(), call.button(DOWN_ACTION))
    blocks = fake.wait_for("chat.update", updates + 1)[updates].args["blocks"]
    first = next(b for b in blocks if b.get("block_id") == FOLLOWUP_BLOCK_ID)["elements"][0]
    pick = {"action_id": first["action_id"], "block_id": FOLLOWUP_BLOCK_ID, "value": first["value"]}
    message = {**call.as_message(), "blocks": blocks}
    running.slack.block_actions(dora, channel, message, pick)
    wait_until(
        lambda: any(h(dora).encode() in k for k in r.keys("thumbloop:slack:followup:*")), "pick"
    )
    wait_until(lambda: interactions(worker.engine, h(dora)), "dora's interaction")

    resp = running.slack.command("forget", dora)
    assert resp.status_code == 200 and "deleted" in resp.json()["text"]
    left = [json.loads(v)["text"] for v in r.lrange(shared, 0, -1)]
    assert len(left) == 2 and secret not in " ".join(left), "only alice's turn and its reply"
    assert "what about my pin" in left
    assert not [k for k in r.keys("*") if h(dora).encode() in k], "no key named by her digest"
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
    assert not r.exists(f"thumbloop:slack:followup:offer:{iid}")
    reply_key = "thumbloop:slack:reply:{}:{}".format
    assert not r.exists(reply_key(h(channel), call.as_message()["ts"])), "reactions stop counting"
    assert r.exists(reply_key(h(channel), alices.as_message()["ts"]))
    wait_until(lambda: not interactions(worker.engine, h(dora)), "dora's rows gone")
    r.close()
