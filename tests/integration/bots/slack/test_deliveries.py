"""How Slack's deliveries reach the app: signed (bad or stale signatures refused), retried
(never a second reply or vote), and never with a token in the logs."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from bots.common.signing import verify_vote
from bots.slack.texts import UP_ACTION
from tests.integration.bots.slack.loop import (
    ALICE,
    BOB,
    DM_ALICE,
    KEYS,
    SIGNING_SECRET,
    Running,
    Worker,
    h,
    new_ts,
    say,
    votes,
    wait_until,
)
from tests.integration.fakes.slack_api import BOT_TOKEN, BOT_USER_ID, FakeSlackApi
from thumbloop.task_names import RECORD_VOTE

pytestmark = [pytest.mark.redis]


def test_requests_with_bad_or_stale_signatures_are_refused(running: Running) -> None:
    body = running.slack.event_body({"type": "app_mention", "text": "hi"})
    assert running.slack.post(body, "application/json", secret="wrong").status_code == 401
    stale = int(time.time()) - 10 * 60
    assert running.slack.post(body, "application/json", timestamp=stale).status_code == 401
    unsigned = httpx.post(running.slack.url, content=body, headers={"Content-Type": "x"})
    assert unsigned.status_code == 401
    challenge = '{"type": "url_verification", "token": "t", "challenge": "c-123"}'
    ok = running.slack.post(challenge, "application/json")
    assert ok.status_code == 200 and "c-123" in ok.text


def test_retried_deliveries_never_give_a_second_reply_or_vote(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    ts = new_ts()
    event = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "user": ALICE}
    event |= {"text": "I lost my card", "ts": ts, "event_ts": ts}
    event_id = f"EvRETRY{uuid.uuid4().hex[:10]}"
    assert running.slack.event(event, event_id).status_code == 200
    call = fake.wait_for("chat.postMessage")[0]
    for n in (1, 2):
        assert running.slack.event(event, event_id, retry_num=n).status_code == 200
    # the same message under another event id (a mention also arriving as message.im)
    assert running.slack.event(event, f"EvOTHER{uuid.uuid4().hex[:8]}").status_code == 200

    reply_ts = call.as_message()["ts"]
    reaction = {
        "type": "reaction_added",
        "user": BOB,
        "reaction": "+1",
        "item_user": BOT_USER_ID,
        "item": {"type": "message", "channel": DM_ALICE, "ts": reply_ts},
        "event_ts": new_ts(),
    }
    rid = f"EvREACT{uuid.uuid4().hex[:10]}"
    retries: tuple[int | None, ...] = (None, 1, 2)
    for retry in retries:
        assert running.slack.event(reaction, rid, retry_num=retry).status_code == 200
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), 1)], "the reaction vote")

    # a later message is answered: everything before it has been handled by then
    say(running, fake, "thanks", thread_ts=ts)
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 2
    assert worker.count(RECORD_VOTE, lambda kw: kw["vote"]["interaction_id"] == str(iid)) == 1


def test_tokens_are_not_logged(
    running: Running, fake: FakeSlackApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    say(running, fake, "my card has not arrived")
    assert caplog.records  # the capture saw the app's (debug) logging
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text
