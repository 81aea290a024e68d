"""The Telegram adapter for real against the local Bot API server, without a model: commands,
flood control, non-text and edited messages, forged buttons, the serving worker down or slow,
webhook mode and its secret, and the token kept out of logs (the CLI: ``test_cli.py``)."""

from __future__ import annotations

import logging
import socket
import time
import uuid

import httpx
import pytest
import redis

from bots.common.signing import SigningKeys, sign_vote
from bots.telegram import texts
from bots.telegram.app import TelegramOptions, WebhookConfig
from bots.telegram.cli import REDACTED, install_token_redaction
from tests.integration.bots.telegram.alone import (
    SECRET,
    TOKEN,
    BotFactory,
    closed_port_url,
    queued_tasks,
    replies_in,
)
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE

pytestmark = [pytest.mark.redis]


def test_commands_are_registered_and_answered(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory
) -> None:
    api, _ = fake
    start_bot()
    registered = api.calls_to("setMyCommands")
    assert len(registered) == 1
    names = [c["command"] for c in registered[0].params["commands"]]
    assert names == ["start", "help", "privacy", "forget"]
    polls = api.calls_to("getUpdates")
    allowed = polls[-1].params["allowed_updates"]
    assert "message_reaction" in allowed and "callback_query" in allowed
    assert "edited_message" not in allowed

    ada = api.user(1001, "Ada")
    chat = api.private_chat(ada)
    for command in ("/start", "/help", "/privacy"):
        api.user_message(chat, ada, command)
    got = wait_until(lambda: len(replies_in(api, chat["id"])) == 3 and replies_in(api, chat["id"]))
    by_text = {m["text"] for m in got}
    assert texts.START in by_text and texts.HELP in by_text
    privacy = next(m["text"] for m in got if m["text"].startswith("What I store"))
    assert "last 6 messages" in privacy and "1 day" in privacy and "/forget" in privacy


def test_flood_control_retry_after_is_waited_out(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory
) -> None:
    api, _ = fake
    start_bot()
    api.fail_next("sendMessage", 429, retry_after=1)
    ada = api.user(1002)
    chat = api.private_chat(ada)
    api.user_message(chat, ada, "/help")
    wait_until(lambda: replies_in(api, chat["id"]))
    sends = api.calls_to("sendMessage")
    assert len(sends) == 2, "the 429 answer is retried once, not dropped or repeated"
    assert sends[1].at - sends[0].at >= 0.9, "the retry waited for retry_after"


def test_serving_down_gives_a_quick_apology_and_the_bot_keeps_running(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis
) -> None:
    api, _ = fake
    start_bot(serving_url=closed_port_url())
    ada = api.user(1003)
    chat = api.private_chat(ada)
    started = time.monotonic()
    api.user_message(chat, ada, "where is my card?")
    first = wait_until(lambda: replies_in(api, chat["id"]), timeout=15)
    assert time.monotonic() - started < 10
    assert first[0]["text"] == texts.APOLOGY_UNAVAILABLE
    assert "reply_markup" not in first[0], "an apology has nothing to rate"
    assert any(c.params.get("action") == "typing" for c in api.calls_to("sendChatAction"))
    api.user_message(chat, ada, "hello again?")
    both = wait_until(lambda: len(replies_in(api, chat["id"])) == 2 and replies_in(api, chat["id"]))
    assert both[1]["text"] == texts.APOLOGY_UNAVAILABLE
    assert not [t for t, _ in queued_tasks(broker) if t == RECORD_INTERACTION]


def test_slow_serving_gets_an_apology_after_the_reply_timeout(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory
) -> None:
    api, _ = fake
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        start_bot(
            serving_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
            options=TelegramOptions(
                reply_timeout_s=1.5, serving_timeout_s=5, serving_retries=0, typing_interval_s=0.4
            ),
        )
        ada = api.user(1004)
        chat = api.private_chat(ada)
        started = time.monotonic()
        api.user_message(chat, ada, "is anyone there?")
        got = wait_until(lambda: replies_in(api, chat["id"]), timeout=15)
        assert got[0]["text"] == texts.APOLOGY_UNAVAILABLE
        assert time.monotonic() - started < 8
        typing = [c for c in api.calls_to("sendChatAction") if c.params["chat_id"] == chat["id"]]
        assert len(typing) >= 2, "typing is repeated while the user waits"


def test_non_text_messages_get_a_text_only_reply(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory
) -> None:
    api, _ = fake
    start_bot()
    ada = api.user(1005)
    chat = api.private_chat(ada)
    api.sticker(chat, ada)
    got = wait_until(lambda: replies_in(api, chat["id"]))
    assert got[0]["text"] == texts.TEXT_ONLY
    # in a group a sticker that is not a reply to the bot is none of its business
    group = api.group_chat(-100_555)
    api.sticker(group, ada)
    api.user_message(group, ada, "/help")
    got = wait_until(lambda: replies_in(api, group["id"]))
    time.sleep(0.3)
    assert [m["text"] for m in replies_in(api, group["id"])] == [texts.HELP]


def test_forged_and_malformed_buttons_are_refused_and_never_recorded(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, broker: redis.Redis
) -> None:
    api, _ = fake
    start_bot()
    ada = api.user(1006)
    chat = api.private_chat(ada)
    api.user_message(chat, ada, "/start")
    message = wait_until(lambda: replies_in(api, chat["id"]))[0]
    target = uuid.uuid4()
    forged = [
        sign_vote(SigningKeys("not-our-secret"), target, 1),
        sign_vote(SigningKeys(SECRET), target, 1)[:-2] + "AA",
        "t1.garbage",
        "fg:y:nothex",
    ]
    refused = [api.press(ada, message, data) for data in forged]
    control = uuid.uuid4()
    ok = api.press(ada, message, sign_vote(SigningKeys(SECRET), control, -1))
    wait_until(lambda: all(api.query_answered(q) for q in [*refused, ok]))
    answers = {c.params["callback_query_id"]: c.params for c in api.calls_to("answerCallbackQuery")}
    for q in refused:
        assert answers[q].get("show_alert") is True
        assert answers[q]["text"] == texts.BUTTON_INVALID
    assert not answers[ok].get("show_alert")
    # the valid press went through the queue; none of the refused ones did (same FIFO)
    votes = wait_until(lambda: [k for t, k in queued_tasks(broker) if t == RECORD_VOTE])
    assert [v["vote"]["interaction_id"] for v in votes] == [str(control)]
    assert votes[0]["vote"]["rater"] != str(ada["id"]) and len(votes[0]["vote"]["rater"]) == 64


def test_webhook_refuses_a_wrong_secret_and_accepts_the_right_one(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory
) -> None:
    api, _ = fake
    port = free_port()
    hook = WebhookConfig(
        url="https://bot.example.test/tg/hook", secret_token="s3cret-Token_" + "x" * 24, port=port
    )
    start_bot(webhook=hook)
    assert api.webhook is not None
    assert api.webhook["url"] == hook.url and api.webhook["secret_token"] == hook.secret_token
    assert api.allowed_updates is not None and "message_reaction" in api.allowed_updates
    local = f"http://127.0.0.1:{port}/tg/hook"
    ada = api.user(1007)
    chat = api.private_chat(ada)
    sneaky = {
        "update_id": 77_001,
        "message": {
            "message_id": 500,
            "date": int(time.time()),
            "chat": chat,
            "from": ada,
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    assert httpx.post(local, json=sneaky, timeout=5).status_code == 403
    wrong = {"X-Telegram-Bot-Api-Secret-Token": "not-it"}
    assert httpx.post(local, json=sneaky, headers=wrong, timeout=5).status_code == 403

    api.webhook_delivery_url = local  # what the TLS proxy in front of the bot forwards to
    sent = api.user_message(chat, ada, "/start")  # delivered with the right secret
    wait_until(lambda: [m for m in replies_in(api, chat["id"]) if m["text"] == texts.START])
    api.edit(sent, "/help")  # edited messages are ignored
    api.user_message(chat, ada, "/privacy")
    wait_until(lambda: len(replies_in(api, chat["id"])) >= 2)
    time.sleep(0.5)
    texts_sent = [m["text"] for m in replies_in(api, chat["id"])]
    assert texts_sent[0] == texts.START and texts_sent[1].startswith("What I store")
    assert texts.HELP not in texts_sent, "a refused request or an edit was processed"
    assert len(texts_sent) == 2


def test_the_token_never_reaches_the_logs(
    fake: tuple[FakeBotApi, str], start_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = fake
    caplog.set_level(logging.DEBUG)
    redactor = install_token_redaction(TOKEN)
    try:
        bot = start_bot()
        ada = api.user(1008)
        chat = api.private_chat(ada)
        api.user_message(chat, ada, "/help")
        wait_until(lambda: replies_in(api, chat["id"]))
        bot.stop()
    finally:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(redactor)
    assert any(REDACTED in r.getMessage() for r in caplog.records), "httpx logs the URLs"
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text
