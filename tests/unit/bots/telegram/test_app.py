"""The Telegram adapter's runtime pieces that need no server: reply references, configuration
checks and token redaction (the outbox: tests/unit/bots/common/test_outbox.py)."""

from __future__ import annotations

import logging
import uuid

import pytest
from pydantic import SecretStr

from bots.telegram.app import ConfigError, WebhookConfig, build_application, token_of
from bots.telegram.cli import REDACTED, TokenRedactor
from bots.telegram.state import InMemoryReplyRefs
from thumbloop.settings import Settings


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
