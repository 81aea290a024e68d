"""The Telegram adapter alone, for the tests that need no model and no learning worker: the
settings of a bot against the local Bot API server, and what its broker then holds (the
fixtures, ``fake``, ``broker`` and ``start_bot``, are in ``conftest.py``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from pydantic import SecretStr

from tests.integration.fakes.telegram_bot import BotThread
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port
from tests.services import redis_url
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE

TOKEN = "424242:FAULTS-test-token_xyz"
SECRET = "telegram-faults-hmac"  # THUMBLOOP_HMAC_SECRET: the one key of an older deployment
BROKER = redis_url(12)

BotFactory = Callable[..., BotThread]


def queued_tasks(r: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """(task name, kwargs) of every message waiting in the learning queue of the broker."""
    out = []
    for raw in r.lrange(DEFAULT_QUEUE, 0, -1):
        msg = json.loads(raw)
        _, kwargs, _ = json.loads(base64.b64decode(msg["body"]))
        out.append((msg["headers"]["task"], kwargs))
    return out


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused


def settings_for(base: str, serving_url: str, tmp_path: Path, **extra: Any) -> Settings:
    """A bot on the fake at ``base``; ``extra`` settings (flat names) replace the defaults."""
    values: dict[str, Any] = {
        "home": tmp_path,
        "telegram_token": SecretStr(TOKEN),
        "telegram_base_url": f"{base}/bot",
        "telegram_base_file_url": f"{base}/file/bot",
        "serving_url": serving_url,
        "broker_url": BROKER,
        "hmac_secret": SecretStr(SECRET),
    }
    return Settings(**(values | extra))


def replies_in(api: FakeBotApi, chat_id: int) -> list[dict[str, Any]]:
    return api.bot_messages(chat_id)
