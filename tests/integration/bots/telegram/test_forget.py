"""/forget through the whole loop: confirmed by the asking user only, then their rows (and only
theirs) and the chat's history are gone."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from sqlalchemy import Engine

from bots.common import followup as fu
from bots.telegram import texts
from tests.integration.bots.telegram.loop import (
    ask,
    buttons,
    choice,
    corrections_by,
    count_for,
    h,
    interaction_of,
    press_and_wait,
)
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def _try(find: Callable[[], str]) -> str | None:
    try:
        return find()
    except AssertionError:  # not shown yet
        return None


def test_forget_removes_only_the_asking_users_rows(
    api: FakeBotApi, db: Engine, clean_redis: redis.Redis
) -> None:
    bob, eve = api.user(2007, "Bob"), api.user(2008, "Eve")
    chat, eve_chat = api.private_chat(bob), api.private_chat(eve)
    first = ask(api, chat, bob, "my card has not arrived")
    second = ask(api, chat, bob, "hello there")
    press_and_wait(api, bob, first, buttons(first)[0]["callback_data"])
    # a 👎 and what went wrong: the correction is stored, and /forget erases it too
    press_and_wait(api, bob, second, buttons(second)[1]["callback_data"])
    other = wait_until(lambda: _try(lambda: choice(api, second, fu.SOMETHING_ELSE)))
    press_and_wait(api, bob, second, other)
    iid = str(interaction_of(second))
    assert wait_until(lambda: corrections_by(db, h(bob["id"]))) == [(iid, "other", None)]
    eve_reply = ask(api, eve_chat, eve, "how do I change my pin")
    press_and_wait(api, eve, eve_reply, buttons(eve_reply)[1]["callback_data"])
    wait_until(
        lambda: count_for(db, h(bob["id"])) == (2, 2) and count_for(db, h(eve["id"])) == (1, 1)
    )

    before = len(api.bot_messages(chat["id"]))
    api.user_message(chat, bob, "/forget")
    ask_msg = wait_until(lambda: api.bot_messages(chat["id"])[before:])[0]
    assert ask_msg["text"] == texts.FORGET_ASK
    yes, no = buttons(ask_msg)
    assert (yes["text"], no["text"]) == (texts.FORGET_YES, texts.FORGET_NO)

    not_bob = api.press(eve, ask_msg, yes["callback_data"])  # someone else's button
    wait_until(lambda: api.query_answered(not_bob))
    refusal = api.calls_to("answerCallbackQuery")[-1].params
    assert refusal["show_alert"] is True and refusal["text"] == texts.FORGET_NOT_YOURS

    press_and_wait(api, bob, ask_msg, yes["callback_data"])
    done = wait_until(
        lambda: (
            (m := api.message(chat["id"], ask_msg["message_id"]))["text"] == texts.FORGET_DONE and m
        )
    )
    assert "reply_markup" not in done
    assert wait_until(lambda: count_for(db, h(bob["id"])) == (0, 0))
    assert corrections_by(db, h(bob["id"])) == []
    assert count_for(db, h(eve["id"])) == (1, 1)
    assert clean_redis.llen(f"thumbloop:tg:history:{h(chat['id'])}") == 0
