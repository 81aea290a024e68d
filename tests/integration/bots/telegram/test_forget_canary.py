"""The privacy canary (issue 23): a user's message carries a string found nowhere else; they vote,
pick a follow-up, and others in the group chat talk after them; then they /forget. Afterwards
the canary is in no table of the database (every table, every column), no Redis key or value of
the loop's database, no file of the bot's outbox spool (delivered, the bot still running), no log
record of the bot or the worker, no result of the worker's result backend, and no MLflow artifact
or record of a retrain run made after the forget (which logs no message text at all: another
user's, still stored and trained on, is in none of its files either).

The bot here is one of its own (its own home, so its spool is this test's), against its own
local Bot API server; serving, the learning worker, PostgreSQL and Redis are the Telegram loop's
(``conftest.py``)."""

from __future__ import annotations

import itertools
import logging
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr
from sqlalchemy import Engine, inspect, text

from bots.common import followup as fu
from bots.telegram.app import build_application, run_polling
from learning.registry.versions import log_and_register
from learning.retrain.run import run_retrain
from tests.integration.bots.telegram.loop import (
    ID_KEY,
    OPTIONS,
    REDIS_URL,
    SIGNING_KEY,
    TOKEN,
    ask,
    buttons,
    corrections_by,
    count_for,
    h,
    press_and_wait,
)
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import run_uvicorn
from thumbloop.settings import Settings

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

CANARY = f"zq{uuid.uuid4().hex[:16]}kx"  # a word no model, template or other test writes
KEPT = f"yw{uuid.uuid4().hex[:16]}jv"  # the same, in a message of someone not forgotten


@pytest.fixture
def own_bot(
    serving: str, worker: None, tmp_path: Path
) -> Iterator[tuple[FakeBotApi, BotThread, Path]]:
    fake = FakeBotApi(TOKEN)
    # Telegram's callback query ids are unique across bots; the package's other fake starts at
    # the same number and the presses it saw are remembered in the Redis this bot shares
    fake._query_ids = itertools.count(970_000_001)
    home = tmp_path / "bot-home"
    with run_uvicorn(fake.app, ready_path=None) as base:
        # history long enough that her turns are still in the group's when she forgets
        settings = Settings(
            home=home,
            telegram_token=SecretStr(TOKEN),
            telegram_base_url=f"{base}/bot",
            telegram_base_file_url=f"{base}/file/bot",
            serving_url=serving,
            broker_url=REDIS_URL,
            redis_url=REDIS_URL,
            id_key=SecretStr(ID_KEY),
            signing_key=SecretStr(SIGNING_KEY),
            history_turns=20,
        )
        app = build_application(settings, OPTIONS)
        bot = BotThread(app, lambda: run_polling(app, stop_signals=None, poll_timeout_s=1))
        bot.start()
        wait_until(lambda: fake.calls_to("getUpdates"), timeout=60)
        try:
            yield fake, bot, home
        finally:
            bot.stop()


def tables_with(db: Engine, needle: str) -> list[str]:
    """The tables of the database any row of which holds ``needle`` in any column."""
    found = []
    with db.connect() as conn:
        for table in inspect(conn).get_table_names():
            hits = conn.scalar(
                text(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE :n'),
                {"n": f"%{needle}%"},
            )
            if hits:
                found.append(table)
    return found


def redis_hits(r: Any, needle: str) -> list[str]:
    """The keys of the Redis database (a ``redis.Redis``) whose name or value holds
    ``needle``."""
    raw = needle.encode()
    found: list[str] = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key).decode()
        values: list[Any]
        if kind == "string":
            values = [r.get(key)]
        elif kind == "list":
            values = r.lrange(key, 0, -1)
        elif kind == "hash":
            values = [x for kv in r.hgetall(key).items() for x in kv]
        elif kind == "set":
            values = list(r.smembers(key))
        elif kind == "zset":
            values = [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        else:
            values = [r.dump(key)]
        if raw in key or any(v and raw in v for v in values):
            found.append(key.decode(errors="replace"))
    return found


def files_with(root: Path, needle: str) -> list[str]:
    """The files under ``root`` whose bytes hold ``needle`` (SQLite files, -wal and -journal
    beside them included)."""
    raw = needle.encode()
    return [str(p) for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


def log_hits(records: list[logging.LogRecord], needle: str) -> list[str]:
    """Log lines (message and traceback as a handler writes them) that hold ``needle``."""
    fmt = logging.Formatter("%(name)s %(message)s")
    return [fmt.format(r) for r in records if needle in fmt.format(r)]


def result_backend_hits(base: Path, needle: str) -> list[str]:
    """The worker's result backend (SQLite in its home): rows that hold ``needle``."""
    found = []
    for path in base.glob("tg-worker*/results.db"):
        with sqlite3.connect(path) as conn:
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"):
                for row in conn.execute(f'SELECT * FROM "{name}"'):
                    if needle.encode() in repr(row).encode() or needle in repr(row):
                        found.append(f"{path}:{name}")
    return found


def test_a_forgotten_users_canary_is_found_nowhere(
    own_bot: tuple[FakeBotApi, BotThread, Path],
    db: Engine,
    clean_redis: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    tmp_path_factory: pytest.TempPathFactory,
    database: str,
    tiny_registered: Any,
    tiny_domain: Path,
) -> None:
    caplog.set_level(logging.INFO)  # what the bot and worker log in production
    for ours in ("bots", "learning", "thumbloop", "serving"):
        caplog.set_level(logging.DEBUG, logger=ours)  # and all of our own, to be strict
    api, _, home = own_bot
    cora, dan, erin = api.user(3101, "Cora"), api.user(3102, "Dan"), api.user(3103, "Erin")
    group, dm = api.group_chat(-100_3100), api.private_chat(cora)
    mention = f"@{api.bot['username']}"

    mine = ask(api, group, cora, f"{mention} my card {CANARY} has not arrived yet")
    private = ask(api, dm, cora, f"why was I charged twice {CANARY}")
    press_and_wait(api, cora, private, buttons(private)[0]["callback_data"])  # 👍
    press_and_wait(api, cora, mine, buttons(mine)[1]["callback_data"])  # 👎
    rows = wait_until(
        lambda: api.message(group["id"], mine["message_id"])["reply_markup"]["inline_keyboard"][1:]
    )
    answers = len(api.bot_messages(group["id"]))
    press_and_wait(api, cora, mine, rows[0][0]["callback_data"])  # what went wrong: a pick
    assert wait_until(lambda: corrections_by(db, h(cora["id"])))
    if rows[0][0]["text"] not in (fu.SOMETHING_ELSE, fu.DIDNT_HELP):
        wait_until(lambda: len(api.bot_messages(group["id"])) > answers)  # the picked answer

    # the others talk after her, so the group's history holds her turns among theirs
    later = [
        ask(api, group, dan, f"{mention} how do I change my pin {KEPT}"),
        ask(api, group, erin, f"{mention} what is the exchange rate"),
        ask(api, group, dan, f"{mention} my top up failed"),
    ]
    for who, reply, thumb in zip((dan, erin, dan), later, (0, 1, 0), strict=True):
        press_and_wait(api, who, reply, buttons(reply)[thumb]["callback_data"])
    wait_until(lambda: count_for(db, h(cora["id"])) == (2, 2))
    wait_until(lambda: count_for(db, h(dan["id"]))[1] == 2 and count_for(db, h(erin["id"]))[1])
    # the scanners see the canary where it was: they are not blind
    assert "interactions" in tables_with(db, CANARY)
    assert any("history" in k for k in redis_hits(clean_redis, CANARY))

    before = len(api.bot_messages(dm["id"]))
    api.user_message(dm, cora, "/forget")
    ask_msg = wait_until(lambda: api.bot_messages(dm["id"])[before:])[0]
    press_and_wait(api, cora, ask_msg, buttons(ask_msg)[0]["callback_data"])
    wait_until(lambda: count_for(db, h(cora["id"])) == (0, 0), timeout=30)
    wait_until(lambda: not tables_with(db, CANARY), timeout=30)
    assert corrections_by(db, h(cora["id"])) == []

    assert redis_hits(clean_redis, CANARY) == []
    assert redis_hits(clean_redis, h(cora["id"])) == [], "keys named by her digest"
    assert count_for(db, h(dan["id"]))[1] == 2, "the others' votes stay"
    group_history = clean_redis.lrange(f"thumbloop:tg:history:{h(group['id'])}", 0, -1)
    assert len(group_history) == 6, "the others' turns (three messages and replies) stay"
    assert files_with(home / "outbox", CANARY) == []
    assert (home / "inbox").is_dir(), "the bot keeps its updates there until handled"
    assert files_with(home / "inbox", CANARY) == []
    assert result_backend_hits(tmp_path_factory.getbasetemp(), CANARY) == []
    assert log_hits(caplog.records, CANARY) == []

    # a retrain made after the forget: nothing of hers in its MLflow run, artifacts or records
    settings = Settings(
        home=tmp_path_factory.mktemp("canary-mlflow"),
        model_name="thumbloop-canary",
        device="cpu",
        domain_dir=tiny_domain,
        database_url=database,
    )
    log_and_register(
        settings,
        tiny_registered.bundle_dir,
        params={},
        metrics={},
        artifacts={},
        dicts={},
        tags={"kind": "seed"},
    )
    outcome = run_retrain(settings, db)
    assert outcome.run_id is not None, outcome  # a run was logged: the check is not vacuous
    assert files_with(settings.home, CANARY) == []
    assert tables_with(db, CANARY) == []
    # stronger: the run logs no message text at all, so neither do runs made before a forget
    # (Dan's message, voted on and so trained on, is in the database and in no artifact)
    assert "interactions" in tables_with(db, KEPT)
    assert files_with(settings.home, KEPT) == []
