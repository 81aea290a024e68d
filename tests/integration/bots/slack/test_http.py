"""The Slack adapter's HTTP mode against oversized bodies and as `thumbloop bot slack --http` runs
it: a body over the cap gets 413 before the rest of it is read, signed or not, with or without a
Content-Length, and the handlers never see it; the command listens on loopback only."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from bots.slack.app import MAX_BODY_BYTES, build_http_app, build_slack_bot
from bots.slack.texts import APOLOGY
from tests.integration.fakes.slack_api import (
    BOT_TOKEN,
    FakeSlackApi,
    SlackDelivery,
    run_fake_slack_api,
    slack_signature,
)
from tests.integration.servers import free_port, run_uvicorn
from thumbloop.settings import Settings

SIGNING_SECRET = "slack-signing-secret-for-http-tests"
ID_KEY, SIGNING_KEY = "slack-http-id-key-" + "i" * 20, "slack-http-signing-key-" + "s" * 20
ALICE, DM = "U0ALICE01", "D0ALICE01"
ROOT = Path(__file__).resolve().parents[4]
BIG = 2 * 1024 * 1024


@pytest.fixture
def fake() -> Iterator[FakeSlackApi]:
    with run_fake_slack_api() as api:
        yield api


@pytest.fixture
def served(fake: FakeSlackApi, tmp_path: Path) -> Iterator[str]:
    """The HTTP app on loopback; the serving worker is down, so a handler that runs posts an
    apology: every chat.postMessage is a handler run."""
    settings = Settings(
        home=tmp_path,
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.base_url,
        serving_url=f"http://127.0.0.1:{free_port()}",
        broker_url=f"redis://127.0.0.1:{free_port()}/0",
        id_key=ID_KEY,
        signing_key=SIGNING_KEY,
    )
    with run_uvicorn(build_http_app(build_slack_bot(settings, http=True)), "/healthz") as base:
        yield base


def raw_post(base: str, head: dict[str, str], chunks: list[bytes]) -> int:
    """POSTs the head and ``chunks`` to /slack/events on a raw socket, then waits (15 s at most)
    for the status line, whether or not the body is complete. httpx cannot send part of a body;
    here the rest of it is simply never sent, so an answer proves the server did not wait for
    it."""
    host, port = base.removeprefix("http://").split(":")
    lines = ["POST /slack/events HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in head.items()]
    with socket.create_connection((host, int(port)), timeout=15) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        for chunk in chunks:
            try:
                conn.sendall(chunk)
            except OSError:  # the server answered and closed: it reads no more
                break
        answer = b""
        while b"\r\n" not in answer:
            got = conn.recv(4096)
            assert got, "the server closed without an answer"
            answer += got
    return int(answer.split(b" ", 2)[1])


def signed_head(body: bytes) -> dict[str, str]:
    ts = str(int(time.time()))
    return {
        "Content-Type": "application/json",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": slack_signature(SIGNING_SECRET, ts, body.decode()),
    }


def test_a_2_mb_unsigned_body_gets_413_before_it_is_read(served: str, fake: FakeSlackApi) -> None:
    first = b"x" * 65_536
    status = raw_post(
        served,
        {"Content-Type": "application/json", "Content-Length": str(BIG)},
        [first],  # the rest of the 2 MB is never sent: the answer comes without it
    )
    assert status == 413
    # under the cap the body goes on to bolt, which refuses it unsigned: the cap is the only
    # thing that changed for a big body
    assert httpx.post(f"{served}/slack/events", content=b"{}").status_code == 401
    assert fake.count("chat.postMessage") == 0


def test_a_chunked_body_over_the_cap_gets_413_as_it_streams(served: str) -> None:
    chunk = b"y" * 65_536
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    # past the cap, and never ended (no last chunk): only a server that counts answers at all
    n = MAX_BODY_BYTES // len(chunk) + 2
    assert raw_post(served, {"Transfer-Encoding": "chunked"}, [framed] * n) == 413


def test_a_signed_oversized_event_never_reaches_a_handler(served: str, fake: FakeSlackApi) -> None:
    slack = SlackDelivery(f"{served}/slack/events", SIGNING_SECRET)
    ts = f"{time.time():.6f}"
    event: dict[str, Any] = {"type": "message", "channel_type": "im", "channel": DM}
    event |= {"user": ALICE, "ts": ts, "event_ts": ts}
    big = slack.event_body(event | {"text": "a" * BIG}).encode()
    assert raw_post(served, signed_head(big) | {"Content-Length": str(len(big))}, [big]) == 413
    # a small event after it is answered (an apology: serving is down), and it is the only one
    ts = f"{time.time():.6f}"
    assert slack.event(event | {"text": "hello", "ts": ts, "event_ts": ts}).status_code == 200
    assert fake.wait_for("chat.postMessage")[0].args["text"] == APOLOGY
    time.sleep(0.3)
    assert fake.count("chat.postMessage") == 1


def test_the_command_listens_on_loopback_only_and_caps_bodies(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBLOOP_")}
    env |= {
        "THUMBLOOP_HOME": str(tmp_path),
        "THUMBLOOP_SLACK_BOT_TOKEN": BOT_TOKEN,
        "THUMBLOOP_SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "THUMBLOOP_SLACK_API_URL": f"http://127.0.0.1:{free_port()}/api/",
        "THUMBLOOP_ID_KEY": ID_KEY,
        "THUMBLOOP_SIGNING_KEY": SIGNING_KEY,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "thumbloop", "bot", "slack", "--http", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        listening = {
            c.laddr.ip
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
        assert listening == {"127.0.0.1"}
        head = {"Content-Length": str(BIG)}
        assert raw_post(f"http://127.0.0.1:{port}", head, [b"z" * 65_536]) == 413
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert BOT_TOKEN not in out and ID_KEY not in out
