"""The Telegram loop's servers, shared by the test modules here that drive it (each test uses
users of its own), with their helpers in ``loop.py``; and a bot alone against a local Bot API
server of each test's own (``fake``, ``start_bot``), with its helpers in ``alone.py``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from sqlalchemy import Engine

from bots.telegram.app import (
    TelegramOptions,
    WebhookConfig,
    build_application,
    run_polling,
    run_webhook,
)
from serving.app import create_app
from tests.integration.bots.telegram import alone
from tests.integration.bots.telegram.loop import OPTIONS, REDIS_URL, TOKEN, bot_settings
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import fresh_postgres_db, run_uvicorn
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade
from thumbloop.task_names import DEFAULT_QUEUE


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


# -- the adapter alone: a Bot API of each test's own, no model, no learning worker ------------


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(alone.BROKER)
    r.delete(DEFAULT_QUEUE)
    yield r
    r.delete(DEFAULT_QUEUE)
    r.close()


@pytest.fixture
def fake() -> Iterator[tuple[FakeBotApi, str]]:
    api = FakeBotApi(alone.TOKEN)
    with run_uvicorn(api.app, ready_path=None) as base:
        yield api, base


@pytest.fixture
def start_bot(fake: tuple[FakeBotApi, str], tmp_path: Path) -> Iterator[alone.BotFactory]:
    """Starts bots on ``fake`` (settings from :func:`alone.settings_for`, ``**settings`` on
    top); each is stopped at the end of the test, or earlier with ``.stop()``."""
    bots: list[BotThread] = []
    api, base = fake

    def start(
        serving_url: str | None = None,
        options: TelegramOptions | None = None,
        webhook: WebhookConfig | None = None,
        **settings: Any,
    ) -> BotThread:
        url = serving_url or alone.closed_port_url()
        app = build_application(
            alone.settings_for(base, url, tmp_path, **settings),
            options or TelegramOptions(queue_retry_max_s=1),
        )
        if webhook is None:
            thread = BotThread(app, lambda: run_polling(app, stop_signals=None, poll_timeout_s=1))
            polls = len(api.calls_to("getUpdates"))
            thread.start()
            wait_until(lambda: len(api.calls_to("getUpdates")) > polls)
        else:
            thread = BotThread(app, lambda: run_webhook(app, webhook, stop_signals=None))
            thread.start()
            wait_until(lambda: api.webhook is not None and app.running)
        bots.append(thread)
        return thread

    yield start
    for thread in bots:
        thread.stop()
