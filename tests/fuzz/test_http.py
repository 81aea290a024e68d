"""The HTTP endpoints fuzzed, the CI cut (``bench/fuzz.py`` runs ten thousand and more): serving's
``/v1/predict`` and ``/v1/answer``, the Slack bot's signed Events API endpoint and the Telegram
bot's webhook, each sent a few hundred hypothesis-made requests and a 1 MB chunked body, never
answer 500 (``tests/fuzz/strategies.py`` says what is sent). Then the requests that did get a 500
before the fixes in bots/slack/app.py and bots/telegram/app.py, one by one."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator

import httpx
import pytest

from tests.fuzz.harness import Tally, Target, fuzz, send_chunked_megabyte, targets
from tests.fuzz.strategies import SLACK_SECRET, TELEGRAM_SECRET, Request, sign_slack

pytestmark = pytest.mark.slow

CASES = 250


@pytest.fixture(scope="module")
def endpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Target]]:
    with targets(tmp_path_factory.mktemp("fuzz")) as found:
        yield {t.name: t for t in found}


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=60) as c:
        yield c


NAMES = ["serving /v1/predict", "serving /v1/answer", "slack /slack/events", "telegram webhook"]


@pytest.mark.parametrize("name", NAMES)
def test_no_request_gets_a_500(
    endpoints: dict[str, Target], client: httpx.Client, name: str
) -> None:
    target = endpoints[name]
    tally = fuzz(target, CASES, client)
    status = send_chunked_megabyte(client, target, tally)
    assert not tally.failures, tally.failures[:5]
    assert tally.cases >= CASES + 1
    assert set(tally.statuses) <= target.allowed, tally.statuses
    assert status in target.allowed
    # the fuzzing got past the front door: some requests were answered as valid ones
    assert tally.statuses[200] > 0, tally.statuses


def _post(client: httpx.Client, target: Target, request: Request) -> int:
    return client.post(
        target.base + request.path, headers=request.wire_headers(), content=request.body
    ).status_code


def _signed(body: bytes, content_type: str, timestamp: str | None = None) -> Request:
    ts = timestamp or str(int(time.time()))
    headers: dict[str, str | bytes] = {
        "content-type": content_type,
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sign_slack(SLACK_SECRET, ts, body),
    }
    return Request("/slack/events", headers, body)


def test_slack_requests_that_answered_500(
    endpoints: dict[str, Target], client: httpx.Client
) -> None:
    slack = endpoints["slack /slack/events"]
    form = "application/x-www-form-urlencoded"
    no_actions = b"payload=" + urllib.parse.quote(json.dumps({"type": "block_actions"})).encode()
    no_actions += urllib.parse.quote(', "actions": []').encode()  # an unparsable payload
    empty_actions = json.dumps({"type": "block_actions", "actions": []})
    cases = {
        # signed, but shapes bolt's own middleware and matchers choke on
        "no actions": (
            _signed(b"payload=" + urllib.parse.quote(empty_actions).encode(), form),
            400,
        ),
        "a list for an event": (
            _signed(
                json.dumps({"type": "event_callback", "event": [1]}).encode(), "application/json"
            ),
            400,
        ),
        "a list for a body": (_signed(b"[1, 2]", "application/json"), 400),
        # unsigned: refused before anything is parsed, whatever the headers say
        "a timestamp that is not a number": (
            Request(
                "/slack/events",
                {"content-type": form, "x-slack-request-timestamp": "?", "x-slack-signature": "?"},
                b"command=%EF%BB%BF",
            ),
            401,
        ),
        "a body that is not UTF-8": (_signed(b'{"type": "\xed\xa0\x80"}', "application/json"), 401),
    }
    got = {name: _post(client, slack, request) for name, (request, _) in cases.items()}
    assert got == {name: status for name, (_, status) in cases.items()}
    # and a well-formed signed request still goes through
    challenge = json.dumps({"type": "url_verification", "challenge": "abc"}).encode()
    r = client.post(
        slack.base + "/slack/events",
        headers=_signed(challenge, "application/json").wire_headers(),
        content=challenge,
    )
    assert r.status_code == 200 and "abc" in r.text


def test_telegram_requests_that_answered_500(
    endpoints: dict[str, Target], client: httpx.Client
) -> None:
    telegram = endpoints["telegram webhook"]
    path = telegram.megabyte(b"").path
    right = {"content-type": "application/json", "x-telegram-bot-api-secret-token": TELEGRAM_SECRET}
    cases = {
        "not UTF-8": (right, b'{"update_id": "\xed\xa0\x80"}', 400),
        "not JSON": (right, b"\x93\xa3s", 400),
        "too deep": (right, b"[" * 5000 + b"]" * 5000, 400),
        "a list": (right, b"[1, 2]", 400),
        # PTB takes these for updates; the inbox could not key them by id (found with the inbox)
        "update_id an object": (right, b'{"update_id": {}}', 400),
        "update_id a string": (right, b'{"update_id": "7", "message": {}}', 400),
        # without the secret nothing is parsed: 403 whatever the body
        "no secret": ({"content-type": "application/json"}, b"\x93\xa3s", 403),
        "wrong secret": (right | {"x-telegram-bot-api-secret-token": "x" * 40}, b"\x93", 403),
    }
    got = {
        name: _post(client, telegram, Request(path, dict(headers), body))
        for name, (headers, body, _) in cases.items()
    }
    assert got == {name: status for name, (_, _, status) in cases.items()}
    update = {
        "update_id": 7,
        "message": {
            "message_id": 1,
            "date": 0,
            "text": "hi",
            "chat": {"id": 5, "type": "private"},
            "from": {"id": 5, "is_bot": False, "first_name": "A"},
        },
    }
    assert _post(client, telegram, Request(path, dict(right), json.dumps(update).encode())) == 200


def test_tally_counts_a_500_and_a_dropped_request_as_failures() -> None:
    tally = Tally()
    request = Request("/", {}, b"")
    tally.record(request, 200)
    tally.record(request, 503)  # overload is an answer
    tally.record(request, 500, "boom")
    tally.record(request, None, "RemoteProtocolError")
    assert tally.cases == 4 and len(tally.failures) == 2
