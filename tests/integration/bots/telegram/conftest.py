"""The Telegram loop's servers, shared by the test modules here that drive it (each test uses
users of its own); their helpers are in ``loop.py``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from sqlalchemy import Engine

from bots.telegram.app import build_application, run_polling
from serving.app import create_app
from tests.integration.bots.telegram.loop import OPTIONS, REDIS_URL, TOKEN, bot_settings
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import fresh_postgres_db, run_uvicorn
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade


@pytest.fixture(scope="package")
def clean_redis() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    yield r
    r.flushdb()
    r.close()


@pytest.fixture(scope="package")
def database() -> Iterator[str]:
    with fresh_postgres_db() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="package")
def db(database: str) -> Iterator[Engine]:
    engine = make_engine(database)
    yield engine
    engine.dispose()


@pytest.fixture(scope="package")
def serving(tiny_registered: Any, tiny_settings: Settings) -> Iterator[str]:
    settings = Settings(home=tiny_settings.home, device="cpu", model_name="thumbloop-tg")
    with run_uvicorn(create_app(settings, str(tiny_registered.bundle_dir))) as base:
        yield base


@pytest.fixture(scope="package")
def worker(
    database: str, clean_redis: redis.Redis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """The learning Celery worker (its real tasks) consuming the loop's broker."""
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


@pytest.fixture(scope="package")
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
