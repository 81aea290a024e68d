"""What the fuzzers send (``tests/fuzz/harness.py`` sends it): hypothesis strategies of
requests to serving's ``POST /v1/predict`` and ``POST /v1/answer``, the Slack Events API endpoint
and the Telegram webhook. Any JSON value; text with lone surrogates, NUL, control and invisible
characters; nesting thousands deep; bytes that are not UTF-8; valid bodies with stray bytes
spliced in; platform-shaped payloads whose fields are any of those; right, wrong, missing and
stale signatures and secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.integration.fakes.slack_api import TEAM_ID

SLACK_SECRET = "fuzz-slack-signing-secret-" + "s" * 16
TELEGRAM_TOKEN = "777777:FUZZ-test-token_abc"
TELEGRAM_SECRET = "fuzz-telegram-webhook-secret_" + "t" * 16
ID_KEY, SIGNING_KEY = "fuzz-id-key-" + "i" * 24, "fuzz-signing-key-" + "k" * 24
INTENTS = ["card_arrival", "change_pin", "out_of_scope", "exchange_rate"]

# the characters that broke answers before, mixed into arbitrary text
ODD = ["\ud800", "\udfff", "\udc00\ud800", "\x00", "a\x00b", "\x1b[2J", "\u200b", "\ufeff", "\r\n"]
TEXT = st.text(st.characters(exclude_categories=()), max_size=40) | st.sampled_from(ODD)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
IDS = st.integers(-(2**63), 2**63) | st.integers(1, 10**6) | TEXT | VALUES


@dataclass(frozen=True)
class Request:
    path: str
    headers: Mapping[str, str | bytes]
    body: bytes

    def wire_headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (k.encode(), v if isinstance(v, bytes) else v.encode()) for k, v in self.headers.items()
        ]


def encode(value: Any, escaped: bool) -> bytes:
    """JSON text; lone surrogates escaped (``\\ud800``), or written as the bytes of their code
    points (not UTF-8; Python's JSON reader still decodes them)."""
    if escaped:
        return json.dumps(value).encode()
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


DEEP = st.builds(
    lambda n, shape: shape.replace("X", "[" * n, 1).replace("Y", "]" * n, 1).encode(),
    st.integers(1, 5000),
    st.sampled_from(["XY", '{"text": XY}', 'X{"text": "hi"}Y', '{"a": {"b": XY}}']),
)


@st.composite
def mangled(draw: st.DrawFn, good: st.SearchStrategy[Any]) -> bytes:
    """A body: a well-shaped value from ``good`` (most of the time), any JSON value, deep
    nesting, raw bytes, or a good body with a few arbitrary bytes spliced in."""
    kind = draw(st.sampled_from(["good"] * 5 + ["value", "deep", "bytes", "spliced"]))
    if kind == "deep":
        return draw(DEEP)
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    body = encode(draw(good if kind != "value" else VALUES), draw(st.booleans()))
    if kind == "spliced":
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.binary(min_size=1, max_size=3)) + body[at:]
    return body


# -- serving ---------------------------------------------------------------------------------

TURN = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]) | TEXT, "text": TEXT | VALUES}
)
MESSAGE = st.fixed_dictionaries(
    {"text": TEXT | VALUES},
    optional={
        "conversation_id": TEXT | VALUES,
        "history": st.lists(TURN, max_size=3) | VALUES,
        "platform": st.sampled_from(["api", "telegram", "slack"]) | TEXT,
        "extra": VALUES,
    },
)
# well-typed messages whose strings are arbitrary: most reach the model
TYPED = st.fixed_dictionaries(
    {"text": TEXT},
    optional={
        "conversation_id": TEXT,
        "history": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "text": TEXT}),
            max_size=3,
        ),
        "platform": st.sampled_from(["api", "telegram", "slack"]),
    },
)
ANSWER = st.fixed_dictionaries(
    {"intent": st.sampled_from(INTENTS) | TEXT | VALUES},
    optional={
        "sentiment": st.sampled_from(["negative", "neutral", "positive"]) | TEXT | VALUES,
        "conversation_id": TEXT | VALUES,
        "platform": st.sampled_from(["api", "telegram", "slack"]) | TEXT,
        "extra": VALUES,
    },
)
JSON_TYPES = st.sampled_from(["application/json"] * 6 + ["text/plain", "", "application/x-www"])


@st.composite
def serving_requests(draw: st.DrawFn, path: str, good: st.SearchStrategy[Any]) -> Request:
    content_type = draw(JSON_TYPES)
    headers: dict[str, str | bytes] = {"content-type": content_type} if content_type else {}
    return Request(path, headers, draw(mangled(good)))


def _megabyte_json(path: str, key: str) -> Callable[[bytes], Request]:
    def make(filler: bytes) -> Request:
        body = b'{"' + key.encode() + b'": "' + filler + b'"}'
        return Request(path, {"content-type": "application/json"}, body)

    return make


# -- Slack -----------------------------------------------------------------------------------

EVENT = st.fixed_dictionaries(
    {
        "type": st.sampled_from(["message", "app_mention", "reaction_added", "reaction_removed"])
        | TEXT
    },
    optional={
        "text": TEXT | VALUES,
        "user": st.sampled_from(["U0FUZZ001", "U0FUZZ002"]) | TEXT | VALUES,
        "channel": st.sampled_from(["D0FUZZ001", "C0FUZZ001"]) | TEXT | VALUES,
        "channel_type": st.sampled_from(["im", "channel", "group"]) | TEXT,
        "ts": st.just(None).map(lambda _: f"{time.time():.6f}") | TEXT | VALUES,
        "event_ts": TEXT | VALUES,
        "thread_ts": TEXT | VALUES,
        "subtype": st.sampled_from(["bot_message", "message_changed"]) | TEXT,
        "bot_id": TEXT | VALUES,
        "reaction": st.sampled_from(["+1", "-1", "thumbsup"]) | TEXT | VALUES,
        "item": st.fixed_dictionaries({"type": TEXT, "channel": TEXT, "ts": TEXT}) | VALUES,
        "item_user": TEXT | VALUES,
        "blocks": VALUES,
    },
)
ACTION_IDS = st.sampled_from(
    ["thumbloop_vote_up", "thumbloop_vote_down"]
    + [f"thumbloop_choice_{c}" for c in "0123oh"]
    + ["thumbloop_choice_9", "other"]
)
TOKENISH = st.sampled_from(["v1.k.x.1.mac", "c1.k.iid.0.mac", ""]) | TEXT | VALUES
BLOCK_ACTIONS = st.fixed_dictionaries(
    {
        "type": st.just("block_actions") | TEXT,
        "actions": st.lists(
            st.fixed_dictionaries(
                {"action_id": ACTION_IDS | TEXT, "type": st.just("button") | TEXT},
                optional={"value": TOKENISH, "block_id": TEXT, "action_ts": TEXT},
            ),
            max_size=2,
        )
        | VALUES,
    },
    optional={
        "user": st.fixed_dictionaries({"id": TEXT | VALUES}, optional={"team_id": TEXT}) | VALUES,
        "team": st.fixed_dictionaries({"id": st.just(TEAM_ID) | TEXT}) | VALUES,
        "channel": st.fixed_dictionaries({"id": TEXT | VALUES}) | VALUES,
        "container": VALUES,
        "message": st.fixed_dictionaries({"ts": TEXT, "text": TEXT}, optional={"blocks": VALUES})
        | VALUES,
        "response_url": TEXT,
        "trigger_id": TEXT,
        "api_app_id": TEXT,
    },
)


def _form(fields: dict[str, Any]) -> bytes:
    """application/x-www-form-urlencoded, strings as UTF-8 (surrogates as their raw bytes)."""
    pairs = []
    for k, v in fields.items():
        text = v if isinstance(v, str) else json.dumps(v)
        value = text.encode("utf-8", "surrogatepass")
        pairs.append(f"{urllib.parse.quote(k)}={urllib.parse.quote_from_bytes(value)}")
    return "&".join(pairs).encode()


@st.composite
def slack_bodies(draw: st.DrawFn) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["event"] * 4 + ["action"] * 3 + ["command"] * 2 + ["other"] * 3))
    if kind == "event":
        envelope = {
            "token": "unused",
            "team_id": draw(st.just(TEAM_ID) | TEXT),
            "api_app_id": "A0FUZZ",
            "type": draw(st.just("event_callback") | st.just("url_verification") | TEXT),
            "event": draw(EVENT | VALUES),
            "event_id": draw(st.uuids().map(lambda u: f"Ev{u.hex}") | TEXT | VALUES),
            "event_time": draw(st.integers() | VALUES),
            "challenge": draw(TEXT | VALUES),
        }
        return draw(mangled(st.just(envelope))), "application/json"
    if kind == "action":
        payload = encode(draw(BLOCK_ACTIONS), draw(st.booleans()))
        if draw(st.booleans()):  # now and then not JSON at all
            payload = draw(st.binary(max_size=40)) or payload
        body = b"payload=" + urllib.parse.quote_from_bytes(payload).encode()
        return body, "application/x-www-form-urlencoded"
    if kind == "command":
        fields = draw(
            st.fixed_dictionaries(
                {"command": st.just("/thumbloop") | TEXT},
                optional={
                    "text": st.sampled_from(["forget", "help", "", "forget yes"]) | TEXT,
                    "user_id": TEXT,
                    "channel_id": TEXT,
                    "team_id": st.just(TEAM_ID) | TEXT,
                    "response_url": TEXT,
                    "trigger_id": TEXT,
                },
            )
        )
        return _form(fields), "application/x-www-form-urlencoded"
    body = draw(mangled(VALUES))
    return body, draw(st.sampled_from(["application/json", "application/x-www-form-urlencoded"]))


@st.composite
def slack_requests(draw: st.DrawFn) -> Request:
    body, content_type = draw(slack_bodies())
    headers: dict[str, str | bytes] = {"content-type": content_type}
    signing = draw(st.sampled_from(["valid"] * 6 + ["none", "wrong", "stale", "garbled"]))
    ts = str(int(time.time()) - (3600 if signing == "stale" else 0))
    if signing != "none":
        secret = "not-the-secret" if signing == "wrong" else SLACK_SECRET
        signature = sign_slack(secret, ts, body)
        if signing == "garbled":
            ts, signature = draw(TEXT), draw(TEXT)
        headers |= {
            "x-slack-request-timestamp": _header(ts),
            "x-slack-signature": _header(signature),
        }
    if draw(st.integers(0, 9)) == 0:
        headers["x-slack-retry-num"] = _header(draw(TEXT))
    return Request("/slack/events", headers, body)


def sign_slack(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's request signature, over the body's bytes whatever they are."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _header(value: str) -> bytes:
    """A header value that can go on the wire (latin-1, no line breaks or NUL): what is left of
    ``value``."""
    raw = value.encode("latin-1", "replace")
    return bytes(b for b in raw if b == 9 or 32 <= b != 127).strip(b" \t")


def _slack_megabyte(filler: bytes) -> Request:
    body = b'{"type": "event_callback", "event": {"type": "message", "text": "' + filler + b'"}}'
    ts = str(int(time.time()))
    return Request(
        "/slack/events",
        {
            "content-type": "application/json",
            "x-slack-request-timestamp": ts,
            "x-slack-signature": sign_slack(SLACK_SECRET, ts, body),
        },
        body,
    )


# -- Telegram --------------------------------------------------------------------------------

USER = st.fixed_dictionaries(
    {"id": st.integers(1, 10**9) | IDS, "is_bot": st.booleans() | VALUES, "first_name": TEXT},
    optional={"username": TEXT, "language_code": TEXT},
)
CHAT = st.fixed_dictionaries(
    {
        "id": st.integers(-(10**12), 10**9) | IDS,
        "type": st.sampled_from(["private", "group"]) | TEXT,
    },
    optional={"title": TEXT},
)
MESSAGE_TG = st.fixed_dictionaries(
    {"message_id": st.integers(1, 10**6) | IDS, "date": st.integers(0, 2**31) | IDS, "chat": CHAT},
    optional={
        "from": USER | VALUES,
        "text": TEXT | st.sampled_from(["/start", "/forget", "/help", "/forget@bot yes"]) | VALUES,
        "entities": VALUES,
        "reply_to_message": VALUES,
        "sticker": VALUES,
    },
)
CALLBACK = st.fixed_dictionaries(
    {"id": TEXT | IDS, "from": USER, "chat_instance": TEXT},
    optional={"data": TOKENISH, "message": MESSAGE_TG | VALUES},
)
REACTION = st.fixed_dictionaries(
    {"chat": CHAT, "message_id": IDS, "date": IDS},
    optional={"user": USER, "old_reaction": VALUES, "new_reaction": VALUES},
)
UPDATE = st.fixed_dictionaries(
    {"update_id": st.integers(0, 2**31) | IDS},
    optional={
        "message": MESSAGE_TG | VALUES,
        "edited_message": MESSAGE_TG | VALUES,
        "callback_query": CALLBACK | VALUES,
        "message_reaction": REACTION | VALUES,
    },
)


@st.composite
def telegram_requests(draw: st.DrawFn, path: str) -> Request:
    body = draw(mangled(UPDATE))
    secret = draw(st.sampled_from(["valid"] * 6 + ["none", "wrong", "garbled"]))
    content_type = draw(st.sampled_from(["application/json"] * 8 + ["text/plain", ""]))
    headers: dict[str, str | bytes] = {"content-type": content_type} if content_type else {}
    if secret != "none":
        token = {"valid": TELEGRAM_SECRET, "wrong": TELEGRAM_SECRET[:-1] + "x"}.get(secret)
        headers["x-telegram-bot-api-secret-token"] = token or _header(draw(TEXT))
    return Request(path, headers, body)


def _telegram_megabyte(path: str) -> Callable[[bytes], Request]:
    def make(filler: bytes) -> Request:
        body = b'{"update_id": 1, "message": {"message_id": 1, "date": 0, "text": "' + filler
        body += b'", "chat": {"id": 1, "type": "private"}, "from": {"id": 1, "is_bot": false, '
        body += b'"first_name": "A"}}}'
        headers = {
            "content-type": "application/json",
            "x-telegram-bot-api-secret-token": TELEGRAM_SECRET,
        }
        return Request(path, headers, body)

    return make
