"""The broker down under the whole loop: votes wait without bothering the user, and what a bot
could not send is sent by its next run."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from bots.telegram import texts
from bots.telegram.app import build_application, make_deps, run_polling
from bots.telegram.handlers import TelegramDeps
from tests.integration.bots.telegram.loop import (
    OPTIONS,
    REDIS_DB,
    TOKEN,
    ask,
    bot_settings,
    buttons,
    h,
    interaction_of,
    stored_text,
    votes,
)
from tests.integration.fakes.tcp_proxy import TcpProxy
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port, run_uvicorn
from thumbloop.settings import Settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


@contextlib.contextmanager
def _broker_down(serving: str, tmp_path: Path) -> Iterator[tuple[FakeBotApi, TcpProxy, Settings]]:
    """A fake Bot API and bot settings whose broker sits behind a proxy that is not open yet."""
    fake = FakeBotApi(TOKEN)
    proxy = TcpProxy(free_port())
    try:
        with run_uvicorn(fake.app, ready_path=None) as base:
            broker = f"redis://127.0.0.1:{proxy.port}/{REDIS_DB}"
            yield fake, proxy, bot_settings(base, serving, tmp_path, broker_url=broker)
    finally:
        proxy.close()


def _start_bot(fake: FakeBotApi, settings: Settings) -> tuple[TelegramDeps, BotThread]:
    deps = make_deps(settings, OPTIONS)
    app = build_application(settings, OPTIONS, deps=deps)
    bot = BotThread(app, lambda: run_polling(app, stop_signals=None, poll_timeout_s=1)).start()
    polls = len(fake.calls_to("getUpdates"))
    wait_until(lambda: len(fake.calls_to("getUpdates")) > polls, timeout=60)
    return deps, bot


def test_votes_wait_out_a_broker_outage_without_bothering_the_user(
    serving: str, worker: None, db: Engine, tmp_path: Path
) -> None:
    with _broker_down(serving, tmp_path) as (fake, proxy, settings):
        deps, bot = _start_bot(fake, settings)
        try:
            zoe = fake.user(2009, "Zoe")
            chat = fake.private_chat(zoe)
            reply = ask(fake, chat, zoe, "my card still has not arrived")
            iid = interaction_of(reply)
            query = fake.press(zoe, reply, buttons(reply)[0]["callback_data"])
            wait_until(lambda: fake.query_answered(query))
            answer = fake.calls_to("answerCallbackQuery")[-1].params
            assert not answer.get("show_alert") and answer["text"] == texts.VOTE_THANKS[1]
            wait_until(
                lambda: buttons(fake.message(chat["id"], reply["message_id"]))[0]["text"].endswith(
                    texts.TICK
                )
            )
            wait_until(lambda: deps.outbox.failed_attempts >= 2 and deps.outbox.pending == 2)
            assert votes(db, iid) == []

            proxy.open()  # the broker is back
            assert wait_until(lambda: votes(db, iid), timeout=30) == [(h(zoe["id"]), 1)]
            assert wait_until(lambda: stored_text(db, iid)) == "my card still has not arrived"
            assert deps.outbox.pending == 0
        finally:
            bot.stop()


def test_tasks_a_bot_could_not_send_are_sent_by_its_next_run(
    serving: str, worker: None, db: Engine, tmp_path: Path
) -> None:
    with _broker_down(serving, tmp_path) as (fake, proxy, settings):
        first, bot = _start_bot(fake, settings)
        try:
            ann = fake.user(2010, "Ann")
            chat = fake.private_chat(ann)
            reply = ask(fake, chat, ann, "can I change my PIN at an ATM")
            iid = interaction_of(reply)
            fake.press(ann, reply, buttons(reply)[1]["callback_data"])
            wait_until(lambda: first.outbox.pending == 2)
        finally:
            bot.stop()  # shuts down with both tasks unsent: they stay in the spool
        assert votes(db, iid) == []

        proxy.open()  # the broker is back; a new run of the bot on the same home
        second, bot = _start_bot(fake, settings)
        try:
            assert second.outbox.recovered == 2
            assert wait_until(lambda: votes(db, iid), timeout=30) == [(h(ann["id"]), -1)]
            assert wait_until(lambda: stored_text(db, iid)) == "can I change my PIN at an ATM"
        finally:
            bot.stop()
