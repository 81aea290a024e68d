"""The whole Telegram loop for real: python-telegram-bot's Application polling the local Bot API
server, the serving worker on loopback with a tiny trained bundle, Redis for history, reply
references and the broker, and the learning Celery worker writing to PostgreSQL."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, func, select, text

from bots.common.signing import verify_vote
from bots.telegram import texts
from bots.telegram.app import TelegramOptions, build_application, make_deps, run_polling
from bots.telegram.handlers import TelegramDeps
from serving.app import create_app
from tests.integration.fakes.telegram_server import BotThread, FakeBotApi, wait_until
from tests.integration.servers import free_port, run_uvicorn
from thumbloop.identity import hash_id
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope, upgrade, votes_for
from thumbloop.store.schema import InteractionRow, VoteRow

TOKEN = "515151:E2E-test-token"
SECRET = "telegram-e2e-hmac"
REDIS_DB = 11  # this module's own Redis database: flushed before and after
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
PG_ADMIN = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
OPTIONS = TelegramOptions(reply_timeout_s=30, serving_timeout_s=25, queue_retry_max_s=1)


def h(raw: int) -> str:
    return hash_id(SECRET, "telegram", raw)


@pytest.fixture(scope="module")
def clean_redis() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"thumbloop_tg_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
    upgrade(url)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def db(database: str) -> Iterator[Engine]:
    engine = make_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def serving(tiny_registered: Any, tiny_settings: Settings) -> Iterator[str]:
    settings = Settings(home=tiny_settings.home, device="cpu", model_name="thumbloop-tg")
    with run_uvicorn(create_app(settings, str(tiny_registered.bundle_dir))) as base:
        yield base


@pytest.fixture(scope="module")
def worker(
    database: str, clean_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The learning Celery worker (its real tasks) consuming this module's broker."""
    from learning.worker.celery_app import create_celery

    settings = Settings(
        home=tmp_path_factory.mktemp("tg-worker"),
        broker_url=REDIS_URL,
        database_url=database,
        redis_url=REDIS_URL,
        model_name="thumbloop-tg",
    )
    app = create_celery(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
        yield


def bot_settings(base: str, serving_url: str, home: Path, broker_url: str = REDIS_URL) -> Settings:
    return Settings(
        home=home,
        telegram_token=SecretStr(TOKEN),
        telegram_base_url=f"{base}/bot",
        telegram_base_file_url=f"{base}/file/bot",
        serving_url=serving_url,
        broker_url=broker_url,
        redis_url=REDIS_URL,
        hmac_secret=SecretStr(SECRET),
    )


@pytest.fixture(scope="module")
def api(
    serving: str, worker: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FakeBotApi]:
    fake = FakeBotApi(TOKEN)
    with run_uvicorn(fake.app, ready_path=None) as base:
        settings = bot_settings(base, serving, tmp_path_factory.mktemp("tg-bot"))
        app = build_application(settings, OPTIONS)
        bot = BotThread(app, lambda: run_polling(app, stop_signals=None, poll_timeout_s=1)).start()
        wait_until(lambda: fake.calls_to("getUpdates"), timeout=60)
        yield fake
        bot.stop()


def ask(api: FakeBotApi, chat: dict[str, Any], user: dict[str, Any], words: str) -> dict[str, Any]:
    """The user sends ``words``; returns the bot's reply to it."""
    before = len(api.bot_messages(chat["id"]))
    sent = api.user_message(chat, user, words)
    replies = wait_until(lambda: api.bot_messages(chat["id"])[before:], timeout=60)
    assert len(replies) == 1
    reply = replies[0]
    if chat["type"] != "private":
        assert reply["reply_to_message"]["message_id"] == sent["message_id"]
    return reply


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    rows = message["reply_markup"]["inline_keyboard"]
    assert len(rows) == 1 and len(rows[0]) == 2
    return list(rows[0])


def interaction_of(message: dict[str, Any]) -> uuid.UUID:
    up, down = buttons(message)
    iid, value = verify_vote(SECRET, up["callback_data"])
    assert value == 1 and verify_vote(SECRET, down["callback_data"]) == (iid, -1)
    return iid


def votes(db: Engine, iid: uuid.UUID) -> list[tuple[str, int]]:
    """The live votes (a withdrawal leaves a tombstone row that is not a vote)."""
    with session_scope(db) as s:
        return [(r.rater, r.value) for r in votes_for(s, str(iid))]


def count_for(db: Engine, user_hash: str) -> tuple[int, int]:
    with db.connect() as conn:
        n_i = conn.scalar(
            select(func.count())
            .select_from(InteractionRow)
            .where(InteractionRow.user_hash == user_hash)
        )
        n_v = conn.scalar(
            select(func.count()).select_from(VoteRow).where(VoteRow.rater == user_hash)
        )
    return int(n_i or 0), int(n_v or 0)


def labels(api: FakeBotApi, reply: dict[str, Any]) -> list[str]:
    """The button labels the user sees under ``reply`` now."""
    return [b["text"] for b in buttons(api.message(reply["chat"]["id"], reply["message_id"]))]


def press_and_wait(
    api: FakeBotApi, user: dict[str, Any], message: dict[str, Any], data: str
) -> None:
    query = api.press(user, message, data)
    wait_until(lambda: api.query_answered(query))


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

    key = f"thumbloop:history:{conversation}"  # stored right after the reply is delivered
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
    row_text = wait_until(lambda: _stored_text(db, interaction_of(reply)))
    assert row_text == "how do I change my pin", "the mention is not part of the question"


def _stored_text(db: Engine, iid: uuid.UUID) -> str | None:
    with db.connect() as conn:
        return conn.scalar(
            select(InteractionRow.text).where(InteractionRow.interaction_id == str(iid))
        )


def test_forget_removes_only_the_asking_users_rows(
    api: FakeBotApi, db: Engine, clean_redis: redis.Redis
) -> None:
    bob, eve = api.user(2007, "Bob"), api.user(2008, "Eve")
    chat, eve_chat = api.private_chat(bob), api.private_chat(eve)
    first = ask(api, chat, bob, "my card has not arrived")
    ask(api, chat, bob, "hello there")
    press_and_wait(api, bob, first, buttons(first)[0]["callback_data"])
    eve_reply = ask(api, eve_chat, eve, "how do I change my pin")
    press_and_wait(api, eve, eve_reply, buttons(eve_reply)[1]["callback_data"])
    wait_until(
        lambda: count_for(db, h(bob["id"])) == (2, 1) and count_for(db, h(eve["id"])) == (1, 1)
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
    assert count_for(db, h(eve["id"])) == (1, 1)
    assert clean_redis.llen(f"thumbloop:history:{h(chat['id'])}") == 0


class TcpProxy:
    """Forwards a local port to Redis; closed, it is a broker that is down."""

    def __init__(self, port: int, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.port, self.target = port, target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for c in self._conns:
            c.close()


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
            assert wait_until(lambda: _stored_text(db, iid)) == "my card still has not arrived"
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
            assert wait_until(lambda: _stored_text(db, iid)) == "can I change my PIN at an ATM"
        finally:
            bot.stop()
