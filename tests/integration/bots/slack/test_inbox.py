"""Requests Slack counts as delivered (the bot acknowledged them) but the bot had not handled
when it died: its next run handles them, once, before it takes new ones
(``bots/slack/inbox.py``). The kill is real: `thumbloop bot slack --http` in its own process,
SIGKILLed while serving is slow to answer the message it acknowledged."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bench.chaos_stack import stop_group
from bots.common.spool import Spool, spool_path
from bots.slack.convert import message_interaction_id
from bots.slack.texts import UP_ACTION
from tests.integration.bots.slack.loop import (
    ALICE,
    BOB,
    DM_ALICE,
    ID_KEY,
    SIGNING_KEY,
    SIGNING_SECRET,
    h,
    new_ts,
    wait_until,
)
from tests.integration.bots.telegram.alone import queued_tasks
from tests.integration.fakes.serving import ScriptedServing, run_scripted_serving
from tests.integration.fakes.slack_api import (
    BOT_TOKEN,
    FakeSlackApi,
    SlackDelivery,
    block_actions,
)
from tests.integration.servers import free_port
from tests.services import redis_url
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE

pytestmark = [pytest.mark.redis]

ROOT = Path(__file__).resolve().parents[4]
REDIS_URL = redis_url(8)  # this module's own database (broker and bot state): flushed
TEXT = "my new card has not arrived yet"


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    yield r
    r.flushdb()


class BotProcess:
    """`thumbloop bot slack --http` on ``home``; ``kill`` is SIGKILL, as a crash or OOM."""

    def __init__(self, home: Path, api: FakeSlackApi, serving_url: str) -> None:
        self.port = free_port()
        self.log = home / f"bot-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBLOOP_")}
        env |= {
            "THUMBLOOP_HOME": str(home),
            "THUMBLOOP_SLACK_BOT_TOKEN": BOT_TOKEN,
            "THUMBLOOP_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "THUMBLOOP_SLACK_API_URL": api.base_url,
            "THUMBLOOP_SERVING_URL": serving_url,
            "THUMBLOOP_BROKER_URL": REDIS_URL,
            "THUMBLOOP_REDIS_URL": REDIS_URL,  # claims survive the kill: the replay must pass them
            "THUMBLOOP_ID_KEY": ID_KEY,
            "THUMBLOOP_SIGNING_KEY": SIGNING_KEY,
        }
        argv = ["bot", "slack", "--http", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "thumbloop", *argv],
            cwd=ROOT,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.events = SlackDelivery(f"http://127.0.0.1:{self.port}/slack/events", SIGNING_SECRET)

    def ready(self) -> None:
        def up() -> bool:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                return httpx.get(url, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, "the bot to listen", timeout=60)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_group(self.proc)


def _message(text: str, user: str = ALICE) -> dict[str, Any]:
    ts = new_ts()
    return {
        "type": "message",
        "channel_type": "im",
        "channel": DM_ALICE,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }


def _replies(api: FakeSlackApi, text: str) -> list[Any]:
    return [c for c in api.calls("chat.postMessage") if c.args.get("text", "").find(text) >= 0]


def _scripted(serving: ScriptedServing) -> None:
    serving.says(TEXT, [("card_arrival", 0.93), ("card_delivery_estimate", 0.04)], "card_1")


def test_a_message_acknowledged_by_a_killed_bot_is_answered_by_the_next_run_once(
    fake: FakeSlackApi, broker: redis.Redis, tmp_path: Path
) -> None:
    with run_scripted_serving({"card_arrival"}) as (serving, url):
        _scripted(serving)
        bot = BotProcess(tmp_path, fake, url)
        later: BotProcess | None = None
        try:
            bot.ready()
            serving.open.clear()  # the model is slow: the bot acknowledges, then waits on it
            event = _message(TEXT)
            assert bot.events.event(event, event_id="EvINBOX0001").status_code == 200
            wait_until(lambda: serving.held == 1, "the bot to ask serving")
            bot.kill()  # acknowledged to Slack, never answered
            assert not _replies(fake, TEXT)
            left = Spool(spool_path(tmp_path, "slack", "inbox"))
            assert [body["event_id"] for _, _, body in left.load()] == ["EvINBOX0001"]
            left.close()
            serving.open.set()

            later = BotProcess(tmp_path, fake, url)
            later.ready()  # the replay runs before the bot listens
            (reply,) = wait_until(lambda: _replies(fake, TEXT), "the replayed answer")
            assert reply.args["channel"] == DM_ALICE
            # Slack's own repeat of it (had the ack been lost) is a repeat, not a new message
            assert later.events.event(event, "EvINBOX0001", retry_num=1).status_code == 200
            time.sleep(1.0)
            assert len(_replies(fake, TEXT)) == 1
        finally:
            bot.stop()
            if later is not None:
                later.stop()
    recorded = [kw for name, kw in queued_tasks(broker) if name == RECORD_INTERACTION]
    iid = message_interaction_id(h(DM_ALICE), event["ts"])
    assert [kw["interaction"]["interaction_id"] for kw in recorded] == [str(iid)]
    assert recorded[0]["interaction"]["text"] == TEXT
    after = Spool(spool_path(tmp_path, "slack", "inbox"))
    assert after.load() == []  # handled, so gone (and the file compacted)
    after.close()
    assert TEXT.encode() not in spool_path(tmp_path, "slack", "inbox").read_bytes()


def test_a_press_a_dead_run_left_is_counted_and_unmatched_requests_do_not_linger(
    fake: FakeSlackApi, broker: redis.Redis, tmp_path: Path
) -> None:
    with run_scripted_serving({"card_arrival"}) as (serving, url):
        _scripted(serving)
        first = BotProcess(tmp_path, fake, url)
        try:
            first.ready()
            assert first.events.event(_message(TEXT)).status_code == 200
            (reply,) = wait_until(lambda: _replies(fake, TEXT), "the answer")
            # a request no listener of ours takes is not kept
            home = {"type": "app_home_opened", "user": BOB, "channel": "D0BOB0001", "tab": "home"}
            first.events.event(home)
        finally:
            first.stop()
        inbox = Spool(spool_path(tmp_path, "slack", "inbox"))
        assert inbox.load() == []
        # a run died holding Bob's 👍 press on that reply, acknowledged and not yet handled
        press = block_actions(BOB, DM_ALICE, reply.as_message(), reply.button(UP_ACTION))
        inbox.add("request", press)
        inbox.close()
        updates = fake.count("chat.update")

        later = BotProcess(tmp_path, fake, url)
        try:
            later.ready()
            fake.wait_for("chat.update", updates + 1)
        finally:
            later.stop()
    (vote,) = [kw["vote"] for name, kw in queued_tasks(broker) if name == RECORD_VOTE]
    assert (vote["rater"], vote["value"]) == (h(BOB), 1)
    assert Spool(spool_path(tmp_path, "slack", "inbox")).load() == []
