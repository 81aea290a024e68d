"""A small Slack Web API server on loopback for the Slack adapter's tests.

It speaks the real protocol as slack_sdk uses it: ``POST /api/<method>`` with a form or JSON
body (or ``GET`` with a query string, as slack_sdk sends ``reactions.get``), the token as
``Authorization: Bearer …`` (or a ``token`` form field), answers ``{"ok": true, …}`` or
``{"ok": false, "error": …}``, and ``429`` with ``Retry-After`` when told to. Every call is
recorded per method, so tests assert on what the bot did, as bolt-python's own tests do with
their mock server. :class:`SlackDelivery` is the other direction: signed requests from Slack.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx

BOT_TOKEN = "xoxb-test-0000-thumbloop"
APP_TOKEN = "xapp-1-test-thumbloop"
TEAM_ID = "T0TEST"
BOT_USER_ID = "UBOT0001"
BOT_ID = "BBOT0001"

# form fields slack_sdk JSON-encodes when posting forms
_JSON_FIELDS = {"blocks", "attachments", "metadata"}
_MSG = ("ts", "text", "blocks")


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    response: dict[str, Any] | None = None  # what the fake answered (None for a 429)

    def as_message(self) -> dict[str, Any]:
        """A posted message as Slack hands it back (e.g. in a ``block_actions`` payload)."""
        assert self.response is not None and self.response["ok"], self.response
        message = {"type": "message", "user": BOT_USER_ID, "bot_id": BOT_ID}
        return message | {k: self.response["ts"] if k == "ts" else self.args[k] for k in _MSG}

    def button(self, action_id: str) -> dict[str, Any]:
        """The action a press on the posted button ``action_id`` reports."""
        for block in self.args.get("blocks") or []:
            for element in block.get("elements") or [] if block.get("type") == "actions" else []:
                if element.get("action_id") == action_id:
                    return {
                        "action_id": action_id,
                        "block_id": block.get("block_id"),
                        "value": element.get("value"),
                    }
        raise AssertionError(f"no button {action_id} in the posted blocks")


@dataclass
class FakeSlackState:
    calls: dict[str, list[Call]] = field(default_factory=lambda: defaultdict(list))
    # (channel, ts) -> {reaction name: [user ids]}
    reactions: dict[tuple[str, str], dict[str, list[str]]] = field(default_factory=dict)
    # (channel, ts) -> the bot's message as posted and updated (reactions.get returns it)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    rate_limited: dict[str, list[int]] = field(default_factory=dict)  # method -> [retry_after...]
    socket_url: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"


class FakeSlackApi:
    """Handle to a running fake: its ``base_url`` and the calls it has seen."""

    def __init__(self, state: FakeSlackState, base_url: str) -> None:
        self.state = state
        self.base_url = base_url

    def calls(self, method: str) -> list[Call]:
        with self.state.lock:
            return list(self.state.calls.get(method, []))

    def count(self, method: str) -> int:
        return len(self.calls(method))

    def reset(self) -> None:
        with self.state.lock:
            self.state.calls.clear()
            self.state.reactions.clear()
            self.state.messages.clear()
            self.state.rate_limited.clear()

    def rate_limit(self, method: str, retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` get 429 with ``Retry-After``."""
        with self.state.lock:
            self.state.rate_limited.setdefault(method, []).extend([retry_after] * times)

    def set_reactions(self, channel: str, ts: str, reactions: dict[str, list[str]]) -> None:
        with self.state.lock:
            self.state.reactions[(channel, ts)] = {k: list(v) for k, v in reactions.items()}

    def wait_for(self, method: str, n: int = 1, timeout: float = 30.0) -> list[Call]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.calls(method)
            if len(found) >= n:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {n} call(s) of {method}, saw {self.count(method)}")


def _parse_body(headers: Any, raw: bytes) -> dict[str, Any]:
    ctype = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if ctype == "application/json":
        body = json.loads(raw or b"{}")
        return body if isinstance(body, dict) else {}
    args: dict[str, Any] = dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    for key in _JSON_FIELDS & args.keys():
        with suppress(ValueError):
            args[key] = json.loads(args[key])
    return args


def _answer(state: FakeSlackState, method: str, args: dict[str, Any]) -> dict[str, Any]:
    channel = str(args.get("channel", ""))
    if method == "auth.test":
        return {
            "ok": True,
            "url": "https://thumbloop-test.slack.com/",
            "team": "Thumbloop Test",
            "user": "thumbloop",
            "team_id": TEAM_ID,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }
    needs_channel = ("chat.postMessage", "chat.update", "chat.postEphemeral", "reactions.get")
    if method in needs_channel and not channel:
        return {"ok": False, "error": "channel_not_found"}
    if method == "chat.postMessage":
        if not args.get("text") and not args.get("blocks"):
            return {"ok": False, "error": "no_text"}
        ts = state.next_ts()
        message: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "ts": ts,
        }
        message.update({k: args[k] for k in ("text", "blocks", "thread_ts") if k in args})
        state.messages[(channel, ts)] = message
        return {"ok": True, "channel": channel, "ts": ts, "message": message}
    if method == "chat.update":
        if not args.get("ts"):
            return {"ok": False, "error": "message_not_found"}
        posted = state.messages.get((channel, str(args["ts"])))
        if posted is not None:
            posted.update({k: args[k] for k in ("text", "blocks") if k in args})
        return {"ok": True, "channel": channel, "ts": args["ts"], "text": args.get("text", "")}
    if method == "chat.postEphemeral":
        if not args.get("user"):
            return {"ok": False, "error": "user_not_in_channel"}
        return {"ok": True, "message_ts": state.next_ts()}
    if method in ("reactions.add", "reactions.remove"):
        key = (channel, str(args.get("timestamp", "")))
        users = state.reactions.setdefault(key, {}).setdefault(str(args.get("name")), [])
        if method == "reactions.add" and BOT_USER_ID not in users:
            users.append(BOT_USER_ID)
        elif method == "reactions.remove" and BOT_USER_ID in users:
            users.remove(BOT_USER_ID)
        return {"ok": True}
    if method == "reactions.get":
        ts = str(args.get("timestamp", ""))
        found = state.reactions.get((channel, ts), {})
        reactions = [
            {"name": name, "users": users, "count": len(users)}
            for name, users in found.items()
            if users
        ]
        # the message itself (text, blocks, ...) with its reactions, as Slack answers
        got: dict[str, Any] = state.messages.get((channel, ts), {"type": "message", "ts": ts})
        got = {**got, "reactions": reactions}
        return {"ok": True, "type": "message", "channel": channel, "message": got}
    if method == "apps.connections.open":
        if state.socket_url is None:
            return {"ok": False, "error": "not_allowed_token_type"}
        return {"ok": True, "url": state.socket_url}
    return {"ok": False, "error": "unknown_method"}


def _make_handler(state: FakeSlackState) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # a few methods (reactions.get, …) are GETs in slack_sdk
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            if not self.path.startswith("/api/"):
                self._send(404, {"ok": False, "error": "not_found"}, {})
                return
            method, _, query = self.path.removeprefix("/api/").partition("?")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
            args.update(_parse_body(self.headers, raw))
            auth = self.headers.get("Authorization") or ""
            token = auth.removeprefix("Bearer ").strip() or args.pop("token", None)
            with state.lock:
                call = Call(method, args, token)
                state.calls[method].append(call)
                waits = state.rate_limited.get(method)
                if waits:
                    retry_after = waits.pop(0)
                    self._send(
                        429,
                        {"ok": False, "error": "ratelimited"},
                        {"Retry-After": str(retry_after)},
                    )
                    return
                expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
                if token != expected:
                    body = {"ok": False, "error": "invalid_auth" if token else "not_authed"}
                else:
                    body = _answer(state, method, args)
                call.response = body
            self._send(200, body, {})

    return Handler


@contextmanager
def run_fake_slack_api() -> Iterator[FakeSlackApi]:
    state = FakeSlackState()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield FakeSlackApi(state, f"http://127.0.0.1:{server.server_address[1]}/api/")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


# -- the other direction: Slack calling the app -------------------------------------------


def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """``X-Slack-Signature`` v0: HMAC-SHA256 of ``v0:{timestamp}:{body}`` with the secret."""
    digest = hmac.new(secret.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256)
    return "v0=" + digest.hexdigest()


def block_actions(
    user: str, channel: str, message: dict[str, Any], action: dict[str, Any]
) -> dict[str, Any]:
    """The payload of a press on ``action`` under ``message``, as Slack sends it."""
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM_ID, "domain": "thumbloop-test"},
        "user": {"id": user, "username": "someone", "team_id": TEAM_ID},
        "api_app_id": "A0THUMBLOOP",
        "token": "deprecated-verification-token",
        "container": {
            "type": "message",
            "message_ts": message["ts"],
            "channel_id": channel,
            "is_ephemeral": False,
        },
        "trigger_id": "1.2.3",
        "channel": {"id": channel, "name": "directmessage"},
        "message": message,
        "response_url": "https://hooks.slack.invalid/actions/1",
        # an ``action_ts`` in ``action`` is kept: a redelivered press carries its own again
        "actions": [{"type": "button", "action_ts": f"{time.time():.6f}", **action}],
    }
    return payload


class SlackDelivery:
    """Sends what Slack sends to an app's Request URL, signed like Slack signs it."""

    def __init__(self, url: str, signing_secret: str) -> None:
        self.url = url
        self.secret = signing_secret
        self._ids = itertools.count(1)

    def post(
        self,
        body: str,
        content_type: str,
        *,
        secret: str | None = None,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        sent = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(secret or self.secret, ts, body),
            **(headers or {}),
        }
        return httpx.post(self.url, content=body.encode(), headers=sent, timeout=15)

    def event_body(self, event: dict[str, Any], event_id: str | None = None) -> str:
        return json.dumps(
            {
                "token": "deprecated-verification-token",
                "team_id": TEAM_ID,
                "api_app_id": "A0THUMBLOOP",
                "event": event,
                "type": "event_callback",
                "event_id": event_id or f"Ev{next(self._ids):08d}{int(time.time())}",
                "event_time": int(time.time()),
                "authorizations": [{"team_id": TEAM_ID, "user_id": BOT_USER_ID, "is_bot": True}],
            }
        )

    def event(
        self, event: dict[str, Any], event_id: str | None = None, retry_num: int | None = None
    ) -> httpx.Response:
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post(self.event_body(event, event_id), "application/json", headers=headers)

    def block_actions(
        self, user: str, channel: str, message: dict[str, Any], action: dict[str, Any]
    ) -> httpx.Response:
        body = urlencode({"payload": json.dumps(block_actions(user, channel, message, action))})
        return self.post(body, "application/x-www-form-urlencoded")

    def command(self, text: str, user: str, channel: str = "D0TEST") -> httpx.Response:
        body = urlencode(
            {
                "token": "deprecated-verification-token",
                "team_id": TEAM_ID,
                "channel_id": channel,
                "user_id": user,
                "command": "/thumbloop",
                "text": text,
                "api_app_id": "A0THUMBLOOP",
                "response_url": "https://hooks.slack.invalid/commands/1",
                "trigger_id": "1.2.3",
            }
        )
        return self.post(body, "application/x-www-form-urlencoded")
