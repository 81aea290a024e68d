"""The Slack adapter when things around it fail, and over Socket Mode: the serving worker down
(the user gets an apology, the app stays up), the broker down (votes wait and are delivered when
it is back), and events arriving over a Socket Mode WebSocket instead of HTTP."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from websockets.sync.server import Server, ServerConnection, serve

from bots.common.signing import SigningKeys, sign_vote
from bots.slack.app import SlackBot, build_http_app, build_slack_bot, run_socket_mode
from bots.slack.texts import APOLOGY, STATUS_BLOCK_ID, UP_ACTION, VOTE_BLOCK_ID, reply_blocks
from tests.integration.fakes.slack_api import (
    APP_TOKEN,
    BOT_TOKEN,
    TEAM_ID,
    FakeSlackApi,
    SlackDelivery,
    run_fake_slack_api,
)
from tests.integration.servers import free_port, run_uvicorn
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, RECORD_VOTE

pytestmark = [pytest.mark.redis]

SIGNING_SECRET = "slack-signing-secret-for-fault-tests"
HMAC_SECRET = "slack-hmac-secret-for-fault-tests"
ALICE, DM = "U0ALICE01", "D0ALICE01"


def settings_for(fake: FakeSlackApi, home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "home": home,
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.base_url,
        "serving_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "broker_url": f"redis://127.0.0.1:{free_port()}/0",  # nor there
        "hmac_secret": HMAC_SECRET,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def fake() -> Iterator[FakeSlackApi]:
    """A Web API of each test's own (the loop tests share one, see conftest.py)."""
    with run_fake_slack_api() as api:
        yield api


def message(text: str) -> dict[str, Any]:
    """A new DM from Alice (each call a fresh ts, so never a repeat)."""
    ts = f"{time.time():.6f}"
    event = {"type": "message", "channel_type": "im", "channel": DM, "user": ALICE, "text": text}
    return event | {"ts": ts, "event_ts": ts}


def test_serving_down_gives_an_apology_and_the_app_stays_up(
    fake: FakeSlackApi, tmp_path: Path
) -> None:
    bot = build_slack_bot(settings_for(fake, tmp_path), http=True)
    with run_uvicorn(build_http_app(bot), ready_path="/healthz") as base:
        slack = SlackDelivery(f"{base}/slack/events", SIGNING_SECRET)
        first = message("my card has not arrived")
        assert slack.event(first).status_code == 200
        apology = fake.wait_for("chat.postMessage")[0]
        assert apology.args["text"] == APOLOGY and apology.args["thread_ts"] == first["ts"]
        assert "blocks" not in apology.args  # nothing to vote on
        # still up: the next message is handled too, and so is a command
        assert slack.event(message("hello?")).status_code == 200
        fake.wait_for("chat.postMessage", 2)
        assert "/thumbloop" in slack.command("help", ALICE).json()["text"]
        assert httpx.get(f"{base}/healthz").status_code == 200
        # no interaction was queued for a reply that never came
        assert (bot.outbox.sent, bot.outbox.pending, bot.outbox.failed_attempts) == (0, 0, 0)
        assert bot.handlers.counters.apologies == 2


def _redis_server(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("redis-server")
    # redis-server ships with every machine this project runs on (.ci/run starts it)
    assert exe is not None, "redis-server is required for this test"
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if client.ping():
                return proc
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.terminate()
    raise RuntimeError("redis-server did not start")


def test_votes_wait_for_a_broker_outage_and_are_sent_when_it_ends(
    fake: FakeSlackApi, tmp_path: Path
) -> None:
    port = free_port()  # the broker's port: closed for now
    settings = settings_for(fake, tmp_path, broker_url=f"redis://127.0.0.1:{port}/0")
    bot = build_slack_bot(settings, http=True, outbox_backoff_s=0.2)
    iid = uuid.uuid4()
    keys = SigningKeys(HMAC_SECRET)  # the one key of a deployment from before the split
    up, down = sign_vote(keys, iid, 1), sign_vote(keys, iid, -1)
    blocks = reply_blocks("Your card is on its way.", up, down)
    msg = {"type": "message", "ts": "1700000000.000100", "text": "Your card…", "blocks": blocks}
    action = {"action_id": UP_ACTION, "block_id": VOTE_BLOCK_ID, "value": up}
    proc: subprocess.Popen[bytes] | None = None
    try:
        with run_uvicorn(build_http_app(bot), ready_path="/healthz") as base:
            slack = SlackDelivery(f"{base}/slack/events", SIGNING_SECRET)
            t0 = time.monotonic()
            assert slack.block_actions(ALICE, DM, msg, action).status_code == 200
            assert time.monotonic() - t0 < 3.0  # acknowledged although the broker is down
            update = fake.wait_for("chat.update")[0]  # the user sees the vote taken
            assert any(b.get("block_id") == STATUS_BLOCK_ID for b in update.args["blocks"])
            deadline = time.monotonic() + 30
            while bot.outbox.failed_attempts < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert bot.outbox.failed_attempts >= 2 and bot.outbox.pending == 1

            proc = _redis_server(port)  # the broker is back
            broker = redis.Redis(port=port)
            deadline = time.monotonic() + 60
            while broker.llen(DEFAULT_QUEUE) < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            raw = broker.lpop(DEFAULT_QUEUE)
            assert isinstance(raw, bytes), "the vote never reached the broker"
            queued = json.loads(raw)
            assert queued["headers"]["task"] == RECORD_VOTE
            _, kwargs, _ = json.loads(base64.b64decode(queued["body"]))
            assert kwargs["vote"]["interaction_id"] == str(iid) and kwargs["vote"]["value"] == 1
            assert ALICE not in json.dumps(kwargs)  # the rater is hashed
            assert bot.outbox.pending == 0 and bot.outbox.sent == 1
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)


# -- Socket Mode: a local WebSocket server speaking Slack's Socket Mode protocol -----------


class FakeSocketMode:
    """Sends envelopes to the connected app and collects its acknowledgements."""

    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.connected = threading.Event()
        self._conn: ServerConnection | None = None
        self._lock = threading.Lock()

    def handler(self, conn: ServerConnection) -> None:
        conn.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {}}))
        with self._lock:
            self._conn = conn
        self.connected.set()
        for raw in conn:
            data = json.loads(raw)
            if "envelope_id" in data:
                with self._lock:
                    self.acks[data["envelope_id"]] = data

    def send(self, kind: str, payload: dict[str, Any]) -> str:
        envelope_id = uuid.uuid4().hex
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": 0,
            "retry_reason": "",
        }
        assert self._conn is not None
        self._conn.send(json.dumps(envelope))
        return envelope_id

    def ack(self, envelope_id: str, timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if envelope_id in self.acks:
                    return self.acks[envelope_id]
            time.sleep(0.02)
        raise AssertionError(f"no ack for envelope {envelope_id}")


def test_socket_mode_answers_events_and_commands(
    fake: FakeSlackApi, serving_url: str, tmp_path: Path
) -> None:
    socket = FakeSocketMode()
    server: Server = serve(socket.handler, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.state.socket_url = f"ws://127.0.0.1:{server.socket.getsockname()[1]}/link"
    # Socket Mode needs no signing secret: the connection itself is authenticated
    settings = settings_for(
        fake,
        tmp_path,
        serving_url=serving_url,
        slack_signing_secret=None,
        slack_app_token=APP_TOKEN,
    )
    bot: SlackBot = build_slack_bot(settings, http=False)
    loop = asyncio.new_event_loop()
    task = loop.create_task(run_socket_mode(bot, APP_TOKEN))

    def run() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    try:
        assert socket.connected.wait(30), "the app never connected"
        opened = fake.wait_for("apps.connections.open")[0]
        assert opened.token == APP_TOKEN

        event = message("my card has not arrived")
        body = SlackDelivery("unused", "unused").event_body(event)
        socket.ack(socket.send("events_api", json.loads(body)))
        reply = fake.wait_for("chat.postMessage")[0]
        assert reply.args["thread_ts"] == event["ts"] and reply.token == BOT_TOKEN
        assert any(b.get("block_id") == VOTE_BLOCK_ID for b in reply.args["blocks"])

        command = {"command": "/thumbloop", "text": "privacy", "user_id": ALICE}
        command |= {"channel_id": DM, "team_id": TEAM_ID, "response_url": "https://x.invalid/"}
        acked = socket.ack(socket.send("slash_commands", command))
        assert "hash" in acked["payload"]["text"]
        assert fake.count("auth.test") >= 1  # bolt learnt the bot's own user id
    finally:
        loop.call_soon_threadsafe(task.cancel)
        runner.join(timeout=30)
        loop.close()
        server.shutdown()
