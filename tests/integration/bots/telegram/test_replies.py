"""A user's message through the whole loop: a rated reply, recorded with hashed ids; very long
messages; in groups only messages addressed to the bot."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import Engine, select

from bots.telegram import texts
from tests.integration.bots.telegram.loop import (
    ask,
    buttons,
    h,
    interaction_of,
    stored_text,
)
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from thumbloop.store.schema import InteractionRow

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_a_message_gets_a_rated_reply_and_is_recorded_with_hashed_ids(
    api: FakeBotApi, db: Engine, clean_redis: redis.Redis
) -> None:
    ada = api.user(2001, "Ada")
    chat = api.private_chat(ada)
    reply = ask(api, chat, ada, "my card has not arrived yet")
    assert reply["text"].strip()
    up, down = buttons(reply)
    assert (up["text"], down["text"]) == (texts.UP, texts.DOWN)
    iid = interaction_of(reply)

    typing = [c for c in api.calls_to("sendChatAction") if c.params["chat_id"] == chat["id"]]
    assert typing and typing[0].params["action"] == "typing"

    def stored() -> InteractionRow | None:
        with db.connect() as conn:
            row = conn.execute(
                select(InteractionRow).where(InteractionRow.interaction_id == str(iid))
            ).first()
            return row  # type: ignore[return-value]

    row = wait_until(stored)
    conversation = h(chat["id"])
    assert row.platform == "telegram"
    assert row.user_hash == h(ada["id"]) and row.conversation_hash == conversation
    assert row.message_ref == f"{conversation}:{reply['message_id']}"
    assert row.text == "my card has not arrived yet" and row.reply_text == reply["text"]
    assert str(ada["id"]) not in (row.user_hash, row.conversation_hash, row.message_ref)

    key = f"thumbloop:tg:history:{conversation}"  # stored right after the reply is delivered
    wait_until(lambda: clean_redis.llen(key) == 2)
    ask(api, chat, ada, "and how do I change my pin?")
    wait_until(lambda: clean_redis.llen(key) == 4)
    assert b"how do I change my pin" in clean_redis.lrange(key, 0, -1)[2]


def test_a_very_long_message_still_gets_a_rated_reply(api: FakeBotApi) -> None:
    ada = api.user(2002)
    chat = api.private_chat(ada)
    reply = ask(api, chat, ada, "where is my new card " * 250)  # 5,250 characters
    assert len(reply["text"]) <= 4096
    interaction_of(reply)


def test_in_groups_the_bot_answers_only_when_addressed(api: FakeBotApi, db: Engine) -> None:
    group = api.group_chat(-100_777)
    ada, bob = api.user(2005, "Ada"), api.user(2006, "Bob")
    chatter = api.user_message(group, ada, "lunch at noon?")
    reply = ask(api, group, bob, f"@{api.bot['username']} how do I change my pin")
    follow_up = api.user_message(group, ada, "and my card?", reply_to=reply)
    answer = wait_until(
        lambda: [
            m
            for m in api.bot_messages(group["id"])
            if m.get("reply_to_message", {}).get("message_id") == follow_up["message_id"]
        ],
        timeout=60,
    )
    interaction_of(answer[0])
    answered = {m["reply_to_message"]["message_id"] for m in api.bot_messages(group["id"])}
    assert chatter["message_id"] not in answered
    assert len(api.bot_messages(group["id"])) == 2
    row_text = wait_until(lambda: stored_text(db, interaction_of(reply)))
    assert row_text == "how do I change my pin", "the mention is not part of the question"
