"""The Telegram application's configuration checks: the token, the webhook, and the keys and
webhook secret refused where public or short outside development mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from bots.telegram.app import (
    ConfigError,
    WebhookConfig,
    build_application,
    keys_of,
    token_of,
)
from thumbloop.settings import DEV_KEY, Settings

STRONG = "0123456789abcdef" * 4  # what `openssl rand -hex 32` looks like


def test_a_missing_token_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="THUMBLOOP_TELEGRAM_TOKEN"):
        token_of(Settings(telegram_token=None))
    with pytest.raises(ConfigError):
        build_application(Settings(telegram_token=SecretStr("")))
    assert token_of(Settings(telegram_token=SecretStr("1:abc"))) == "1:abc"


def test_webhook_config_checks_secret_and_scheme() -> None:
    hook = WebhookConfig(url="https://bot.example.org/tg/updates", secret_token=STRONG)
    assert hook.path == "tg/updates"
    assert WebhookConfig(url="https://x.org/a", secret_token=STRONG, url_path="/b/").path == "b"
    with pytest.raises(ConfigError, match="secret"):
        WebhookConfig(url="https://x.org/a", secret_token="has space " * 4)
    with pytest.raises(ConfigError, match="https"):
        WebhookConfig(url="http://x.org/a", secret_token=STRONG)


def test_a_webhook_secret_under_32_characters_is_refused_outside_dev_mode() -> None:
    short = "Ab_9-z" * 5  # 30 characters
    with pytest.raises(ConfigError, match="openssl rand -hex 32") as refused:
        WebhookConfig(url="https://x.org/a", secret_token=short)
    assert short not in str(refused.value)
    assert WebhookConfig(url="https://x.org/a", secret_token=short, dev=True).secret_token == short
    assert WebhookConfig(url="https://x.org/a", secret_token=short + "xy").secret_token


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(home=tmp_path, telegram_token=SecretStr("1:abc"), **values)


def test_the_builder_refuses_the_development_key_outside_dev_mode(tmp_path: Path) -> None:
    for public in (DEV_KEY, "CHANGE_ME"):
        with pytest.raises(ConfigError, match="THUMBLOOP_DEV=true") as refused:
            build_application(settings(tmp_path, hmac_secret=SecretStr(public)))
        assert public not in str(refused.value) and "openssl rand -hex 32" in str(refused.value)
    with pytest.raises(ConfigError, match="signing key"):  # one public key is enough to refuse
        build_application(settings(tmp_path, id_key=STRONG))
    with pytest.raises(ConfigError, match="THUMBLOOP_TELEGRAM_WEBHOOK_SECRET"):
        build_application(settings(tmp_path, hmac_secret=STRONG, telegram_webhook_secret="short"))
    assert build_application(settings(tmp_path, dev=True, telegram_webhook_secret="short"))


def test_each_key_comes_from_its_own_setting_else_the_hmac_secret(tmp_path: Path) -> None:
    values = {"id_key": "i" * 40, "signing_key": "s" * 40, "signing_key_previous": "p" * 40}
    keys = keys_of(settings(tmp_path, hmac_secret=STRONG, **values))
    assert (keys.id_key, keys.signing_key, keys.signing_key_previous) == (
        "i" * 40,
        "s" * 40,
        "p" * 40,
    )
    # THUMBLOOP_HMAC_SECRET alone (a deployment from before the split) is both keys
    keys = keys_of(settings(tmp_path, hmac_secret=STRONG))
    assert keys.id_key == keys.signing_key == STRONG and keys.signing_key_previous is None
