"""``thumbloop bot slack``: help, and clear errors (never showing a token) before connecting."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from thumbloop.cli.main import cli

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
        )
    }
    result = CliRunner().invoke(cli, ["bot", "slack", *args], env={**clean, **env})
    return result.exit_code, result.output


def test_help_explains_modes_and_environment() -> None:
    code, out = run({}, "--help")
    assert code == 0
    for word in ("Socket Mode", "/slack/events", "THUMBLOOP_SLACK_BOT_TOKEN", "--port"):
        assert word in out


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
