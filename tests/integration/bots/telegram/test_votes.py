"""Votes through the whole loop: the 👍/👎 buttons and thumb reactions, recorded once and
replaced by a new choice."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine

from bots.telegram import texts
from tests.integration.bots.telegram.loop import (
    ask,
    buttons,
    h,
    interaction_of,
    labels,
    press_and_wait,
    votes,
)
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_buttons_record_one_vote_and_a_new_press_replaces_it(api: FakeBotApi, db: Engine) -> None:
    ada = api.user(2003)
    chat = api.private_chat(ada)
    reply = ask(api, chat, ada, "I lost my card")
    iid = interaction_of(reply)
    up, down = buttons(reply)

    press_and_wait(api, ada, reply, up["callback_data"])
    assert wait_until(lambda: votes(db, iid)) == [(h(ada["id"]), 1)]
    wait_until(lambda: labels(api, reply) == [f"{texts.UP} {texts.TICK}", texts.DOWN])
    marked = api.message(chat["id"], reply["message_id"])

    press_and_wait(api, ada, marked, down["callback_data"])
    assert wait_until(lambda: votes(db, iid) == [(h(ada["id"]), -1)])
    wait_until(lambda: labels(api, reply) == [texts.UP, f"{texts.DOWN} {texts.TICK}"])
    marked = api.message(chat["id"], reply["message_id"])

    edits = len(api.calls_to("editMessageReplyMarkup"))
    press_and_wait(api, ada, marked, down["callback_data"])  # the same vote again: nothing new
    answers = api.calls_to("answerCallbackQuery")
    assert not any(c.params.get("show_alert") for c in answers[-3:])
    time.sleep(0.3)  # an edit would follow the answer at once
    assert len(api.calls_to("editMessageReplyMarkup")) == edits
    assert votes(db, iid) == [(h(ada["id"]), -1)]


def test_a_thumb_reaction_counts_and_removing_it_withdraws(api: FakeBotApi, db: Engine) -> None:
    ada = api.user(2004)
    chat = api.private_chat(ada)
    reply = ask(api, chat, ada, "what is the exchange rate today")
    iid = interaction_of(reply)

    api.react(ada, reply, new=[texts.UP])
    assert wait_until(lambda: votes(db, iid)) == [(h(ada["id"]), 1)]
    api.react(ada, reply, old=[texts.UP], new=[texts.DOWN])
    assert wait_until(lambda: votes(db, iid) == [(h(ada["id"]), -1)])
    marked = wait_until(
        lambda: (
            (m := api.message(chat["id"], reply["message_id"]))
            and buttons(m)[1]["text"].endswith(texts.TICK)
            and m
        )
    )
    assert buttons(marked)[0]["text"] == texts.UP
    api.react(ada, reply, old=[texts.DOWN], new=[])
    assert wait_until(lambda: votes(db, iid) == [])
