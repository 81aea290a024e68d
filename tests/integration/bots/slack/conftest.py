"""The Slack loop's servers, shared by the test modules here that drive it; their helpers are in
``loop.py``. ``fake`` is the one local Web API, its record of calls cleared for each test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_prerun

from bots.slack.app import build_http_app, build_slack_bot
from serving.app import create_app
from tests.integration.bots.slack.loop import (
    ID_KEY,
    REDIS_URL,
    SIGNING_KEY,
    SIGNING_SECRET,
    Running,
    Worker,
)
from tests.integration.fakes.slack_api import (
    BOT_TOKEN,
    FakeSlackApi,
    SlackDelivery,
    run_fake_slack_api,
)
from tests.integration.servers import run_uvicorn
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, upgrade


@pytest.fixture(scope="package")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from learning.worker.celery_app import create_celery

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    home = tmp_path_factory.mktemp("slack-worker")
    url = f"sqlite:///{home / 'thumbloop.db'}"
    upgrade(url)
    settings = Settings(home=home, database_url=url, broker_url=REDIS_URL, redis_url=REDIS_URL)
    app = create_celery(settings)
    ran: list[tuple[str, dict[str, Any]]] = []

    def on_prerun(task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        if task is not None and task.app is app:
            ran.append((task.name, dict(kwargs or {})))

    task_prerun.connect(on_prerun, weak=False)
    engine = make_engine(url)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            yield Worker(engine, ran)
    finally:
        task_prerun.disconnect(on_prerun)
        engine.dispose()
        r.flushdb()


@pytest.fixture(scope="package")
def serving_url(tiny_registered: Any, tiny_settings: Settings) -> Iterator[str]:
    with run_uvicorn(create_app(tiny_settings, str(tiny_registered.bundle_dir))) as base:
        yield base


@pytest.fixture(scope="package")
def slack_api() -> Iterator[FakeSlackApi]:
    with run_fake_slack_api() as api:
        yield api


@pytest.fixture
def fake(slack_api: FakeSlackApi) -> FakeSlackApi:
    slack_api.reset()
    return slack_api


@pytest.fixture(scope="package")
def running(
    slack_api: FakeSlackApi,
    serving_url: str,
    worker: Worker,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Running]:
    settings = Settings(
        home=tmp_path_factory.mktemp("slack-home"),
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack_api.base_url,
        serving_url=serving_url,
        broker_url=REDIS_URL,
        redis_url=REDIS_URL,
        id_key=ID_KEY,
        signing_key=SIGNING_KEY,
    )
    bot = build_slack_bot(settings, http=True, outbox_backoff_s=0.2)
    with run_uvicorn(build_http_app(bot), ready_path="/healthz") as base:
        yield Running(bot, SlackDelivery(f"{base}/slack/events", SIGNING_SECRET), base)
