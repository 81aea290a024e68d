"""``thumbloop bot slack``: help, and clear errors (never showing a token or a key) before
connecting, the public development key included."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bots.slack.app import SlackConfigError, build_slack_bot
from bots.slack.cli import check_tokens
from thumbloop.cli.main import cli
from thumbloop.settings import DEV_KEY, Settings

BOT = "xoxb-1111-2222-secretbottoken"
APP = "xapp-1-A1-3333-secretapptoken"
SIGNING = "signing-secret-value"


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    clean = {
        k: None
        for k in (
            "THUMBLOOP_SLACK_BOT_TOKEN",
            "THUMBLOOP_SLACK_APP_TOKEN",
            "THUMBLOOP_SLACK_SIGNING_SECRET",
            "THUMBLOOP_HMAC_SECRET",
            "THUMBLOOP_ID_KEY",
            "THUMBLOOP_SIGNING_KEY",
            "THUMBLOOP_DEV",
        )
    }
    result = CliRunner().invoke(cli, ["bot", "slack", *args], env={**clean, **env})
    return result.exit_code, result.output


def test_help_explains_modes_and_environment() -> None:
    code, out = run({}, "--help")
    assert code == 0
    for word in ("Socket Mode", "/slack/events", "THUMBLOOP_SLACK_BOT_TOKEN", "--port"):
        assert word in out
    # HTTP mode listens on loopback unless told otherwise: a proxy or ingress fronts it
    assert "127.0.0.1" in out and "0.0.0.0 only" in out and "reverse proxy" in out


@pytest.mark.parametrize(
    ("env", "args", "needle"),
    [
        ({}, (), "THUMBLOOP_SLACK_BOT_TOKEN is not set"),
        ({"THUMBLOOP_SLACK_BOT_TOKEN": "xapp-wrong-kind"}, (), "starts with xoxb-"),
        ({"THUMBLOOP_SLACK_BOT_TOKEN": BOT}, (), "THUMBLOOP_SLACK_SIGNING_SECRET"),
        (
            {"THUMBLOOP_SLACK_BOT_TOKEN": BOT, "THUMBLOOP_SLACK_APP_TOKEN": APP},
            ("--http",),
            "THUMBLOOP_SLACK_SIGNING_SECRET",
        ),
        (
            {"THUMBLOOP_SLACK_BOT_TOKEN": BOT, "THUMBLOOP_SLACK_APP_TOKEN": "xoxb-not-app"},
            (),
            "xapp-",
        ),
    ],
)
def test_missing_or_wrong_tokens_stop_with_a_clear_error(
    env: dict[str, str], args: tuple[str, ...], needle: str
) -> None:
    code, out = run(env, *args)
    assert code == 2 and needle in out
    for secret in (BOT, APP, SIGNING, "xoxb-not-app", "secretbottoken"):
        assert secret not in out


@pytest.mark.parametrize("mode", [{"THUMBLOOP_SLACK_APP_TOKEN": APP}, {}])
def test_the_public_development_key_is_refused_outside_dev_mode(mode: dict[str, str]) -> None:
    env = {"THUMBLOOP_SLACK_BOT_TOKEN": BOT, "THUMBLOOP_SLACK_SIGNING_SECRET": SIGNING, **mode}
    # were the keys not checked, the bot would start: Socket Mode against a closed local port,
    # HTTP mode on an address it cannot bind (TEST-NET-3), so that fails at once instead
    env["THUMBLOOP_SLACK_API_URL"] = "http://127.0.0.1:9/api/"
    code, out = run(env, "--host", "203.0.113.7")
    assert code == 2
    for needed in ("THUMBLOOP_ID_KEY", "THUMBLOOP_SIGNING_KEY", "openssl rand -hex 32"):
        assert needed in out
    assert "THUMBLOOP_DEV=true" in out and DEV_KEY not in out
    code, out = run({**env, "THUMBLOOP_HMAC_SECRET": "CHANGE_ME"}, "--host", "203.0.113.7")
    assert code == 2 and "THUMBLOOP_HMAC_SECRET" in out and "CHANGE_ME" not in out


def test_the_builder_refuses_it_too_and_dev_mode_allows_it(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        slack_bot_token=BOT,
        slack_signing_secret=SIGNING,
        broker_url="memory://",
        hmac_secret=DEV_KEY,
    )
    with pytest.raises(SlackConfigError, match="openssl rand -hex 32"):
        build_slack_bot(settings, http=True)
    check_tokens(settings.replace(dev=True), http=True)  # no error: development mode
    check_tokens(settings.replace(id_key="i" * 64, signing_key="s" * 64), http=True)
