"""The Telegram application's configuration checks: the token and the webhook."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from bots.telegram.app import ConfigError, WebhookConfig, build_application, token_of
from thumbloop.settings import Settings


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
