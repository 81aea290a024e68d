"""A message through the whole loop: one threaded reply with buttons, recorded; what the bot
never answers; the Web API's rate limits; a message the serving worker refuses."""

from __future__ import annotations

import time

import pytest
import redis

from bots.common.signing import verify_vote
from bots.slack.texts import DOWN_ACTION, REJECTED, UP_ACTION, VOTE_BLOCK_ID
from tests.integration.bots.slack.loop import (
    ALICE,
    DM_ALICE,
    KEYS,
    REDIS_URL,
    SIGNING_KEY,
    Running,
    Worker,
    h,
    interactions,
    new_ts,
    say,
    wait_until,
)
from tests.integration.fakes.slack_api import BOT_ID, BOT_TOKEN, BOT_USER_ID, FakeSlackApi
from thumbloop.identity import hash_id

pytestmark = [pytest.mark.redis]


def test_a_dm_gets_one_threaded_reply_with_buttons_and_is_recorded(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    ts, call = say(running, fake, "my card has still not arrived")
    assert call.token == BOT_TOKEN
    assert call.args["channel"] == DM_ALICE and call.args["thread_ts"] == ts
    actions = [b for b in call.args["blocks"] if b.get("block_id") == VOTE_BLOCK_ID]
    assert len(actions) == 1
    up, down = (call.button(a)["value"] for a in (UP_ACTION, DOWN_ACTION))
    iid, up_value = verify_vote(KEYS, up)
    assert up_value == 1 and verify_vote(KEYS, down) == (iid, -1)

    rows = wait_until(
        lambda: [r for r in interactions(worker.engine, h(ALICE)) if r.interaction_id == str(iid)],
        "the interaction row",
    )
    row = rows[0]
    assert row.platform == "slack" and row.conversation_hash == h(DM_ALICE)
    assert call.response is not None and row.message_ref == call.response["ts"]
    assert row.text == "my card has still not arrived" and row.reply_text
    assert ALICE not in (row.user_hash, row.conversation_hash)
    # ids are hashed with the id key (h), never with the key that signs the buttons
    assert row.user_hash == h(ALICE) != hash_id(SIGNING_KEY, "slack", ALICE)
    assert row.conversation_hash != hash_id(SIGNING_KEY, "slack", DM_ALICE)
    assert fake.count("chat.postMessage") == 1

    # a follow-up in the same thread is answered there, with the earlier turns as history
    _, second = say(running, fake, "when will it come?", thread_ts=ts)
    assert second.args["thread_ts"] == ts
    key = f"thumbloop:slack:history:slack:{h(DM_ALICE)}:{ts}"
    assert redis.Redis.from_url(REDIS_URL).llen(key) == 4


def test_bots_own_messages_edits_and_unmentioned_channel_chatter_are_ignored(
    running: Running, fake: FakeSlackApi
) -> None:
    base = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "text": "hello"}
    ignored = [
        {**base, "user": BOT_USER_ID, "bot_id": BOT_ID},  # our own reply
        {**base, "bot_id": "B0OTHER", "subtype": "bot_message"},  # another bot
        {**base, "user": "U0OTHERBOT", "bot_id": "B0OTHER"},  # a bot posting as a user
        {**base, "user": ALICE, "subtype": "message_changed"},  # an edit
        {**base, "user": ALICE, "subtype": "channel_join"},
        {**base, "user": ALICE, "channel_type": "channel", "channel": "C0GENERAL"},
    ]
    for event in ignored:
        ts = new_ts()
        assert running.slack.event({**event, "ts": ts, "event_ts": ts}).status_code == 200
    # a mention in a channel is answered in its thread, without the mention in the text
    ts = new_ts()
    mention = {"type": "app_mention", "channel": "C0GENERAL", "user": ALICE, "ts": ts}
    mention["text"] = f"<@{BOT_USER_ID}> what is the exchange rate?"
    assert running.slack.event({**mention, "event_ts": ts}).status_code == 200
    call = fake.wait_for("chat.postMessage")[0]
    assert call.args["channel"] == "C0GENERAL" and call.args["thread_ts"] == ts
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 1


def test_web_api_rate_limits_are_retried_after_retry_after(
    running: Running, fake: FakeSlackApi
) -> None:
    fake.rate_limit("chat.postMessage", retry_after=1)
    ts = new_ts()
    event = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "user": ALICE}
    assert running.slack.event({**event, "text": "change my pin", "ts": ts}).status_code == 200
    limited, delivered = fake.wait_for("chat.postMessage", 2)
    assert limited.response is None  # answered 429 + Retry-After: 1
    assert delivered.response is not None and delivered.response["ok"]
    assert delivered.args["thread_ts"] == ts
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 2  # retried once, delivered once


def test_a_message_the_serving_worker_refuses_gets_a_polite_reply(
    running: Running, fake: FakeSlackApi
) -> None:
    ts, call = say(running, fake, "card " * 5000)  # over the serving worker's byte limit (413)
    assert call.args["text"] == REJECTED and call.args["thread_ts"] == ts
    assert "blocks" not in call.args
