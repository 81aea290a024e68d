"""The whole Telegram loop for the tests: python-telegram-bot's Application polling the local Bot
API server, the serving worker with a tiny trained bundle, Redis for history, reply references and
the broker, and the learning Celery worker writing to PostgreSQL (the fixtures are in
``conftest.py``). Here: the settings, and what a user does and what the database then holds."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Engine, func, select

from bots.common.signing import SigningKeys, verify_vote
from bots.telegram import texts
from bots.telegram.app import TelegramOptions
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.services import redis_url
from thumbloop.identity import hash_id
from thumbloop.settings import Settings
from thumbloop.store.db import session_scope, votes_for
from thumbloop.store.schema import LIVE_CORRECTION, CorrectionRow, InteractionRow, VoteRow

TOKEN = "515151:E2E-test-token"
ID_KEY = "telegram-e2e-id-key"  # hashes ids
SIGNING_KEY = "telegram-e2e-signing-key"  # signs buttons: a key of its own
KEYS = SigningKeys(SIGNING_KEY)
REDIS_DB = 11  # the loop's own Redis database: flushed before and after
REDIS_URL = redis_url(REDIS_DB)
OPTIONS = TelegramOptions(reply_timeout_s=30, serving_timeout_s=25, queue_retry_max_s=1)


def h(raw: int) -> str:
    return hash_id(ID_KEY, "telegram", raw)


def bot_settings(base: str, serving_url: str, home: Path, broker_url: str = REDIS_URL) -> Settings:
    return Settings(
        home=home,
        telegram_token=SecretStr(TOKEN),
        telegram_base_url=f"{base}/bot",
        telegram_base_file_url=f"{base}/file/bot",
        serving_url=serving_url,
        broker_url=broker_url,
        redis_url=REDIS_URL,
        id_key=SecretStr(ID_KEY),
        signing_key=SecretStr(SIGNING_KEY),
    )


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
    """The first row: 👍 / 👎 under a reply (follow-up choices, if any, are the rows below)."""
    rows = message["reply_markup"]["inline_keyboard"]
    assert len(rows[0]) == 2
    return list(rows[0])


def choice(api: FakeBotApi, reply: dict[str, Any], label: str) -> str:
    """The callback data of the follow-up choice ``label`` shown under ``reply`` now."""
    current = api.message(reply["chat"]["id"], reply["message_id"])
    for row in current["reply_markup"]["inline_keyboard"][1:]:
        for button in row:
            if button["text"].removeprefix(f"{texts.TICK} ") == label:
                return str(button["callback_data"])
    raise AssertionError(f"no choice {label!r} under the reply")


def corrections_by(db: Engine, rater: str) -> list[tuple[str, str, str | None]]:
    """(interaction, kind, label) of ``rater``'s live corrections."""
    with db.connect() as conn:
        rows = conn.execute(
            select(CorrectionRow.interaction_id, CorrectionRow.kind, CorrectionRow.label).where(
                CorrectionRow.rater == rater, LIVE_CORRECTION
            )
        )
        return [(r[0], r[1], r[2]) for r in rows]


def interaction_of(message: dict[str, Any]) -> uuid.UUID:
    up, down = buttons(message)
    iid, value = verify_vote(KEYS, up["callback_data"])
    assert value == 1 and verify_vote(KEYS, down["callback_data"]) == (iid, -1)
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


def stored_text(db: Engine, iid: uuid.UUID) -> str | None:
    with db.connect() as conn:
        return conn.scalar(
            select(InteractionRow.text).where(InteractionRow.interaction_id == str(iid))
        )
