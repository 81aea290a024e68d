"""The Telegram adapter's runtime pieces that need no server: the outbox, reply references,
configuration checks and token redaction."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
from kombu.exceptions import OperationalError
from pydantic import SecretStr

from bots.telegram import ConfigError, WebhookConfig, build_application, token_of
from bots.telegram_cli import REDACTED, TokenRedactor
from bots.telegram_outbox import Outbox
from bots.telegram_refs import InMemoryReplyRefs
from thumbloop.settings import Settings


class FlakyBroker:
    """A TaskSender whose broker is down for the first ``down`` sends."""

    def __init__(self, down: int = 0, poison: str | None = None) -> None:
        self.down, self.poison = down, poison
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        self.attempts += 1
        if name == self.poison:
            raise TypeError("cannot serialise")
        if self.attempts <= self.down:
            raise OperationalError("Error 111 connecting. Connection refused.")
        self.sent.append((name, kwargs))
        return str(self.attempts)


async def test_outbox_sends_in_order_and_waits_out_an_outage() -> None:
    broker = FlakyBroker(down=3)
    outbox = Outbox(broker, retry_initial_s=0.01, retry_max_s=0.02)
    for i in range(5):
        outbox.submit("learning.record_vote", {"i": i})
    assert outbox.pending == 5  # submit never waits for the broker
    assert await outbox.drain(5)
    assert [k["i"] for _, k in broker.sent] == [0, 1, 2, 3, 4]
    assert outbox.failed_attempts == 3 and outbox.sent == 5
    await outbox.aclose()


async def test_outbox_drops_what_can_never_be_sent_and_the_oldest_when_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker = FlakyBroker(poison="bad")
    outbox = Outbox(broker, max_pending=2)
    outbox.submit("bad", {})
    outbox.submit("good", {"n": 1})
    outbox.submit("good", {"n": 2})  # full: the oldest ("bad") goes
    assert outbox.dropped == 1
    assert await outbox.drain(5)
    assert broker.sent == [("good", {"n": 1}), ("good", {"n": 2})]
    outbox.submit("bad", {})
    assert await outbox.drain(5)
    assert outbox.dropped == 2 and "dropped" in caplog.text
    await outbox.aclose()


async def test_outbox_reports_what_is_lost_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(FlakyBroker(down=10**6), retry_initial_s=0.01, retry_max_s=0.01)
    outbox.submit("learning.record_vote", {})
    await asyncio.sleep(0.05)
    await outbox.aclose(timeout_s=0.1)
    assert "not delivered" in caplog.text


async def test_in_memory_reply_refs_expire_and_stay_bounded() -> None:
    refs = InMemoryReplyRefs(ttl_s=60, max_items=2)
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await refs.put("chat", 1, a)
    await refs.put("chat", 2, b)
    await refs.put("chat", 3, c)
    assert await refs.get("chat", 1) is None
    assert await refs.get("chat", 3) == c and await refs.get("other", 3) is None
    expired = InMemoryReplyRefs(ttl_s=-1)
    await expired.put("chat", 1, a)
    assert await expired.get("chat", 1) is None


def test_a_missing_token_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="THUMBLOOP_TELEGRAM_TOKEN"):
        token_of(Settings(telegram_token=None))
    with pytest.raises(ConfigError):
        build_application(Settings(telegram_token=SecretStr("")))
    assert token_of(Settings(telegram_token=SecretStr("1:abc"))) == "1:abc"


def test_webhook_config_checks_secret_and_scheme() -> None:
    hook = WebhookConfig(url="https://bot.example.org/tg/updates", secret_token="Ab_9-z")
    assert hook.path == "tg/updates"
    assert WebhookConfig(url="https://x.org/a", secret_token="s", url_path="/b/").path == "b"
    with pytest.raises(ConfigError, match="secret"):
        WebhookConfig(url="https://x.org/a", secret_token="has space")
    with pytest.raises(ConfigError, match="https"):
        WebhookConfig(url="http://x.org/a", secret_token="ok")


def test_token_redactor_hides_the_token_in_messages_and_tracebacks() -> None:
    token = "123:SECRET-token"
    redactor = TokenRedactor(token)
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "POST %s", (f"https://api/bot{token}/getMe",), None
    )
    assert redactor.filter(record)
    assert token not in record.getMessage() and REDACTED in record.getMessage()
    try:
        raise RuntimeError(f"The token `{token}` was rejected by the server.")
    except RuntimeError:
        import sys

        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    redactor.filter(failing)
    assert failing.exc_text is not None and token not in failing.exc_text
    assert token not in logging.Formatter().format(failing)
