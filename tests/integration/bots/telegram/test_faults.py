"""The Telegram adapter for real against the local Bot API server, without a model: commands,
flood control, non-text and edited messages, forged buttons, the serving worker down or slow,
webhook mode and its secret, the token kept out of logs, and the `thumbloop bot telegram` CLI."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pydantic import SecretStr

from bots.common.signing import sign_vote
from bots.telegram import texts
from bots.telegram.app import (
    TelegramOptions,
    WebhookConfig,
    build_application,
    run_polling,
    run_webhook,
)
from bots.telegram.cli import REDACTED, install_token_redaction
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port, run_uvicorn
from tests.services import redis_url
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, RECORD_INTERACTION, RECORD_VOTE

pytestmark = [pytest.mark.redis]

TOKEN = "424242:FAULTS-test-token_xyz"
SECRET = "telegram-faults-hmac"
BROKER = redis_url(12)
ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(BROKER)
    r.delete(DEFAULT_QUEUE)
    yield r
    r.delete(DEFAULT_QUEUE)
    r.close()


def queued_tasks(r: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message waiting in the learning queue of the broker."""
    out = []
    for raw in r.lrange(DEFAULT_QUEUE, 0, -1):
        msg = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(msg["body"]))
        out.append((msg["headers"]["task"], kwargs))
    return out


@pytest.fixture
def fake() -> Iterator[tuple[FakeBotApi, str]]:
    api = FakeBotApi(TOKEN)
    with run_uvicorn(api.app, ready_path=None) as base:
        yield api, base


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def settings_for(base: str, serving_url: str, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        home=tmp_path,
        telegram_token=SecretStr(TOKEN),
        telegram_base_url=f"{base}/bot",
        telegram_base_file_url=f"{base}/file/bot",
        serving_url=serving_url,
        broker_url=BROKER,
        hmac_secret=SecretStr(SECRET),
        **extra,
    )


BotFactory = Callable[..., BotThread]


@pytest.fixture
def start_bot(fake: tuple[FakeBotApi, str], tmp_path: Path) -> Iterator[BotFactory]:
    bots: list[BotThread] = []
    api, base = fake

    def start(
        serving_url: str | None = None,
        options: TelegramOptions | None = None,
        webhook: WebhookConfig | None = None,
    ) -> BotThread:
        settings = settings_for(base, serving_url or closed_port_url(), tmp_path)
        app = build_application(settings, options or TelegramOptions(queue_retry_max_s=1))
        if webhook is None:
            thread = BotThread(app, lambda: run_polling(app, stop_signals=None, poll_timeout_s=1))
            thread.start()
            wait_until(lambda: api.calls_to("getUpdates"))
        else:
            thread = BotThread(app, lambda: run_webhook(app, webhook, stop_signals=None))
            thread.start()
            wait_until(lambda: api.webhook is not None and app.running)
        bots.append(thread)
        return thread

    yield start
    for thread in bots:
        thread.stop()


def replies_in(api: FakeBotApi, chat_id: int) -> list[dict[str, Any]]:
    return api.bot_messages(chat_id)


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
        sign_vote("not-our-secret", target, 1),
        sign_vote(SECRET, target, 1)[:-2] + "AA",
        "t1.garbage",
        "fg:y:nothex",
    ]
    refused = [api.press(ada, message, data) for data in forged]
    control = uuid.uuid4()
    ok = api.press(ada, message, sign_vote(SECRET, control, -1))
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
        url="https://bot.example.test/tg/hook", secret_token="s3cret-Token_1", port=port
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


# --- the CLI -----------------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "thumbloop", "bot", "telegram", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def cli_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBLOOP_")}
    env.update({"THUMBLOOP_HOME": str(tmp_path), **values})
    return env


def test_cli_explains_a_missing_token_and_a_missing_webhook_secret(tmp_path: Path) -> None:
    out, _ = cli(env=cli_env(tmp_path)).communicate(timeout=60)
    assert "THUMBLOOP_TELEGRAM_TOKEN" in out and "BotFather" in out
    env = cli_env(tmp_path, THUMBLOOP_TELEGRAM_TOKEN="1:x")
    proc = cli("--webhook-url", "https://bot.example.test/hook", env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "THUMBLOOP_TELEGRAM_WEBHOOK_SECRET" in out


def test_cli_runs_the_bot_and_stops_cleanly_on_sigint(
    fake: tuple[FakeBotApi, str], tmp_path: Path
) -> None:
    api, base = fake
    env = cli_env(
        tmp_path,
        THUMBLOOP_TELEGRAM_TOKEN=TOKEN,
        THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot",
        THUMBLOOP_SERVING_URL=closed_port_url(),
        THUMBLOOP_BROKER_URL=BROKER,
    )
    proc = cli(env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: api.calls_to("getUpdates") or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, "".join(lines)
        ada = api.user(1009)
        chat = api.private_chat(ada)
        api.user_message(chat, ada, "/start")
        assert wait_until(lambda: replies_in(api, chat["id"]))[0]["text"] == texts.START
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "long polling" in out and TOKEN not in out


def test_cli_reports_a_token_telegram_refuses(fake: tuple[FakeBotApi, str], tmp_path: Path) -> None:
    api, base = fake
    wrong = "999:definitely-wrong"
    env = cli_env(
        tmp_path, THUMBLOOP_TELEGRAM_TOKEN=wrong, THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot"
    )
    proc = cli(env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "refused THUMBLOOP_TELEGRAM_TOKEN" in out
    assert wrong not in out and "definitely-wrong" not in out
    assert api.rejected_requests >= 1
