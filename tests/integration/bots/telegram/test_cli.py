"""`thumbloop bot telegram` as a process: clear errors before anything connects (no token, no
webhook secret, public keys or a short webhook secret outside development mode), a run against
the local Bot API server that stops cleanly on SIGINT, and a token Telegram refuses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from bots.telegram import texts
from tests.integration.bots.telegram.alone import BROKER, TOKEN, closed_port_url, replies_in
from tests.integration.fakes.telegram_bot import wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from thumbloop.settings import DEV_KEY

pytestmark = [pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[4]
KEYS = {"THUMBLOOP_ID_KEY": "c1" * 32, "THUMBLOOP_SIGNING_KEY": "d2" * 32}


def cli(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "thumbloop", "bot", "telegram", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def cli_env(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBLOOP_")}
    env.update({"THUMBLOOP_HOME": str(tmp_path), **values})
    return env


def test_cli_explains_a_missing_token_and_a_missing_webhook_secret(tmp_path: Path) -> None:
    out, _ = cli(env=cli_env(tmp_path)).communicate(timeout=60)
    assert "THUMBLOOP_TELEGRAM_TOKEN" in out and "BotFather" in out
    env = cli_env(tmp_path, THUMBLOOP_TELEGRAM_TOKEN="1:x", **KEYS)
    proc = cli("--webhook-url", "https://bot.example.test/hook", env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "THUMBLOOP_TELEGRAM_WEBHOOK_SECRET" in out


def test_cli_refuses_public_keys_and_a_short_webhook_secret_before_connecting(
    fake: tuple[FakeBotApi, str], tmp_path: Path
) -> None:
    api, base = fake
    env = cli_env(
        tmp_path, THUMBLOOP_TELEGRAM_TOKEN=TOKEN, THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot"
    )
    proc = cli(env=env)  # no key set: the built-in development key would be in effect
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    for needed in ("THUMBLOOP_ID_KEY", "THUMBLOOP_SIGNING_KEY", "openssl rand -hex 32"):
        assert needed in out
    assert "THUMBLOOP_DEV=true" in out and DEV_KEY not in out
    proc = cli(env=env | {"THUMBLOOP_HMAC_SECRET": "CHANGE_ME"})  # docker/.env.example's
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "THUMBLOOP_HMAC_SECRET" in out and "CHANGE_ME" not in out

    short = "Short_webhook-secret_31_chars_x"
    hook = env | KEYS | {"THUMBLOOP_TELEGRAM_WEBHOOK_SECRET": short}
    proc = cli("--webhook-url", "https://bot.example.test/hook", env=hook)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "shorter than 32" in out and "openssl rand -hex 32" in out
    assert short not in out
    assert api.calls == [], "refused before a single call to Telegram"


def test_cli_in_dev_mode_runs_the_bot_and_stops_cleanly_on_sigint(
    fake: tuple[FakeBotApi, str], tmp_path: Path
) -> None:
    api, base = fake
    env = cli_env(
        tmp_path,
        THUMBLOOP_TELEGRAM_TOKEN=TOKEN,
        THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot",
        THUMBLOOP_SERVING_URL=closed_port_url(),
        THUMBLOOP_BROKER_URL=BROKER,
        THUMBLOOP_DEV="true",  # no key set: development mode accepts the built-in one
    )
    proc = cli(env=env)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        wait_until(lambda: api.calls_to("getUpdates") or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, "".join(lines)
        ada = api.user(1009)
        chat = api.private_chat(ada)
        api.user_message(chat, ada, "/start")
        assert wait_until(lambda: replies_in(api, chat["id"]))[0]["text"] == texts.START
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "long polling" in out and TOKEN not in out


def test_cli_reports_a_token_telegram_refuses(fake: tuple[FakeBotApi, str], tmp_path: Path) -> None:
    api, base = fake
    wrong = "999:definitely-wrong"
    env = cli_env(
        tmp_path, THUMBLOOP_TELEGRAM_TOKEN=wrong, THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot", **KEYS
    )
    proc = cli(env=env)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert "refused THUMBLOOP_TELEGRAM_TOKEN" in out
    assert wrong not in out and "definitely-wrong" not in out
    assert api.rejected_requests >= 1
