"""The Slack adapter end to end: the real bolt app over HTTP on loopback, signed deliveries, the
real serving worker with a tiny bundle, a local Slack Web API, and the learning Celery worker
(its real tasks) writing to a migrated database, with Redis as broker and shared state."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from celery.contrib.testing.worker import start_worker
from celery.signals import task_prerun
from sqlalchemy import Engine, select

from bots.common.signing import sign_vote, verify_vote
from bots.slack.app import SlackBot, build_http_app, build_slack_bot
from bots.slack.blocks import DOWN_ACTION, STATUS_BLOCK_ID, UP_ACTION, VOTE_BLOCK_ID
from bots.slack.commands import REJECTED
from serving.app import create_app
from tests.integration.fakes.slack_api import (
    BOT_ID,
    BOT_TOKEN,
    BOT_USER_ID,
    Call,
    FakeSlackApi,
    SlackDelivery,
    run_fake_slack_api,
)
from tests.integration.servers import run_uvicorn
from thumbloop.identity import hash_id
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope, upgrade, votes_for
from thumbloop.store.schema import InteractionRow
from thumbloop.task_names import RECORD_VOTE, WITHDRAW_VOTE

REDIS_URL = "redis://127.0.0.1:6379/13"  # this module's own database: flushed before and after
SIGNING_SECRET = "slack-signing-secret-for-tests"
HMAC_SECRET = "slack-hmac-secret-for-tests"
ALICE, BOB = "U0ALICE01", "U0BOB0001"
DM_ALICE = "D0ALICE01"
_ts = itertools.count(1)


def new_ts() -> str:
    return f"{int(time.time())}.{next(_ts):06d}"


def h(raw: str) -> str:
    return hash_id(HMAC_SECRET, "slack", raw)


# -- the learning Celery worker (its real tasks), consuming this module's broker ---------


@dataclass
class Worker:
    engine: Engine
    ran: list[tuple[str, dict[str, Any]]]  # every task the worker started, in order

    def count(self, name: str, pred: Callable[[dict[str, Any]], bool] = lambda _: True) -> int:
        return sum(1 for n, kw in list(self.ran) if n == name and pred(kw))


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    from learning.worker.celery_app import create_celery

    r = redis.Redis.from_url(REDIS_URL)
    r.flushdb()
    home = tmp_path_factory.mktemp("slack-worker")
    url = f"sqlite:///{home / 'thumbloop.db'}"
    upgrade(url)
    settings = Settings(home=home, database_url=url, broker_url=REDIS_URL, redis_url=REDIS_URL)
    app = create_celery(settings)
    ran: list[tuple[str, dict[str, Any]]] = []

    def on_prerun(task: Any = None, kwargs: dict[str, Any] | None = None, **_: Any) -> None:
        if task is not None and task.app is app:
            ran.append((task.name, dict(kwargs or {})))

    task_prerun.connect(on_prerun, weak=False)
    engine = make_engine(url)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            yield Worker(engine, ran)
    finally:
        task_prerun.disconnect(on_prerun)
        engine.dispose()
        r.flushdb()


def wait_until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def votes(engine: Engine, iid: str) -> list[tuple[str, int]]:
    """The live votes (a withdrawal leaves a tombstone row that is not a vote)."""
    with session_scope(engine) as s:
        return [(r.rater, r.value) for r in votes_for(s, iid)]


def interactions(engine: Engine, user_hash: str) -> list[InteractionRow]:
    with session_scope(engine) as s:
        return list(s.scalars(select(InteractionRow).where(InteractionRow.user_hash == user_hash)))


# -- the servers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serving_url(tiny_registered: Any, tiny_settings: Settings) -> Iterator[str]:
    with run_uvicorn(create_app(tiny_settings, str(tiny_registered.bundle_dir))) as base:
        yield base


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeSlackApi]:
    with run_fake_slack_api() as api:
        yield api


@dataclass
class Running:
    bot: SlackBot
    slack: SlackDelivery
    base: str


@pytest.fixture(scope="module")
def running(
    fake: FakeSlackApi, serving_url: str, worker: Worker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    settings = Settings(
        home=tmp_path_factory.mktemp("slack-home"),
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=fake.base_url,
        serving_url=serving_url,
        broker_url=REDIS_URL,
        redis_url=REDIS_URL,
        hmac_secret=HMAC_SECRET,
    )
    bot = build_slack_bot(settings, http=True, outbox_backoff_s=0.2)
    with run_uvicorn(build_http_app(bot), ready_path="/healthz") as base:
        yield Running(bot, SlackDelivery(f"{base}/slack/events", SIGNING_SECRET), base)


@pytest.fixture(autouse=True)
def _fresh_fake(fake: FakeSlackApi) -> None:
    fake.reset()


def say(
    running: Running,
    fake: FakeSlackApi,
    text: str,
    *,
    user: str = ALICE,
    channel: str = DM_ALICE,
    thread_ts: str | None = None,
) -> tuple[str, Call]:
    """A DM from ``user``; returns the message ts and the bot's chat.postMessage call."""
    before = fake.count("chat.postMessage")
    ts = new_ts()
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }
    if thread_ts:
        event["thread_ts"] = thread_ts
    assert running.slack.event(event).status_code == 200
    return ts, fake.wait_for("chat.postMessage", before + 1)[before]


# -- tests ----------------------------------------------------------------------------------


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


def test_a_dm_gets_one_threaded_reply_with_buttons_and_is_recorded(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    ts, call = say(running, fake, "my card has still not arrived")
    assert call.token == BOT_TOKEN
    assert call.args["channel"] == DM_ALICE and call.args["thread_ts"] == ts
    actions = [b for b in call.args["blocks"] if b.get("block_id") == VOTE_BLOCK_ID]
    assert len(actions) == 1
    up, down = (call.button(a)["value"] for a in (UP_ACTION, DOWN_ACTION))
    iid, up_value = verify_vote(HMAC_SECRET, up)
    assert up_value == 1 and verify_vote(HMAC_SECRET, down) == (iid, -1)

    rows = wait_until(
        lambda: [r for r in interactions(worker.engine, h(ALICE)) if r.interaction_id == str(iid)],
        "the interaction row",
    )
    row = rows[0]
    assert row.platform == "slack" and row.conversation_hash == h(DM_ALICE)
    assert call.response is not None and row.message_ref == call.response["ts"]
    assert row.text == "my card has still not arrived" and row.reply_text
    assert ALICE not in (row.user_hash, row.conversation_hash)
    assert fake.count("chat.postMessage") == 1

    # a follow-up in the same thread is answered there, with the earlier turns as history
    _, second = say(running, fake, "when will it come?", thread_ts=ts)
    assert second.args["thread_ts"] == ts
    key = f"thumbloop:history:slack:{h(DM_ALICE)}:{ts}"
    assert redis.Redis.from_url(REDIS_URL).llen(key) == 4


def test_a_button_vote_is_recorded_once_shown_and_replaced_by_a_revote(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    _, call = say(running, fake, "what is the exchange rate for euros")
    message = call.as_message()
    iid, _ = verify_vote(HMAC_SECRET, call.button(UP_ACTION)["value"])

    t0 = time.monotonic()
    resp = running.slack.block_actions(BOB, DM_ALICE, message, call.button(UP_ACTION))
    assert resp.status_code == 200 and time.monotonic() - t0 < 3.0  # acked within Slack's limit
    assert wait_until(lambda: votes(worker.engine, str(iid)), "the vote") == [(h(BOB), 1)]
    update = fake.wait_for("chat.update")[0]
    assert update.args["ts"] == message["ts"] and update.args["channel"] == DM_ALICE
    status = next(b for b in update.args["blocks"] if b.get("block_id") == STATUS_BLOCK_ID)
    assert "👍" in status["elements"][0]["text"]
    assert any(b.get("block_id") == VOTE_BLOCK_ID for b in update.args["blocks"])

    # the other button (on the updated message) changes the vote: still one row, now -1
    updated = {**message, "blocks": update.args["blocks"]}
    resp = running.slack.block_actions(BOB, DM_ALICE, updated, call.button(DOWN_ACTION))
    assert resp.status_code == 200
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), -1)], "the re-vote")
    assert worker.count(RECORD_VOTE, lambda kw: kw["vote"]["interaction_id"] == str(iid)) == 2


def test_forged_or_malformed_button_values_are_refused(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    _, call = say(running, fake, "I want to change my pin")
    message = call.as_message()
    forged_iid = uuid.uuid4()
    forged = sign_vote("not-our-secret", forged_iid, 1)
    real_iid, _ = verify_vote(HMAC_SECRET, call.button(UP_ACTION)["value"])
    # a value signed for 👎 sent as 👍 (direction swapped by hand) is refused too
    swapped = {**call.button(UP_ACTION), "value": call.button(DOWN_ACTION)["value"]}
    for action in (
        {**call.button(UP_ACTION), "value": forged},
        {**call.button(UP_ACTION), "value": "t1.garbage"},
        swapped,
    ):
        assert running.slack.block_actions(BOB, DM_ALICE, message, action).status_code == 200
    notices = fake.wait_for("chat.postEphemeral", 3)
    assert {c.args["user"] for c in notices} == {BOB}
    # a genuine press afterwards goes through; the refused ones never reached the queue
    running.slack.block_actions(ALICE, DM_ALICE, message, call.button(UP_ACTION))
    wait_until(lambda: votes(worker.engine, str(real_iid)) == [(h(ALICE), 1)], "genuine vote")
    assert votes(worker.engine, str(forged_iid)) == []
    pressed = {str(real_iid), str(forged_iid)}
    by_bob = worker.count(
        RECORD_VOTE,
        lambda kw: kw["vote"]["rater"] == h(BOB) and kw["vote"]["interaction_id"] in pressed,
    )
    assert by_bob == 0
    assert fake.count("chat.update") == 1


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
    iid, _ = verify_vote(HMAC_SECRET, call.button(UP_ACTION)["value"])
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), 1)], "the reaction vote")

    # a later message is answered: everything before it has been handled by then
    say(running, fake, "thanks", thread_ts=ts)
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 2
    assert worker.count(RECORD_VOTE, lambda kw: kw["vote"]["interaction_id"] == str(iid)) == 1


def test_bots_own_messages_edits_and_unmentioned_channel_chatter_are_ignored(
    running: Running, fake: FakeSlackApi
) -> None:
    base = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "text": "hello"}
    ignored = [
        {**base, "user": BOT_USER_ID, "bot_id": BOT_ID},  # our own reply
        {**base, "bot_id": "B0OTHER", "subtype": "bot_message"},  # another bot
        {**base, "user": "U0OTHERBOT", "bot_id": "B0OTHER"},  # a bot posting as a user
        {**base, "user": ALICE, "subtype": "message_changed"},  # an edit
        {**base, "user": ALICE, "subtype": "channel_join"},
        {**base, "user": ALICE, "channel_type": "channel", "channel": "C0GENERAL"},
    ]
    for event in ignored:
        ts = new_ts()
        assert running.slack.event({**event, "ts": ts, "event_ts": ts}).status_code == 200
    # a mention in a channel is answered in its thread, without the mention in the text
    ts = new_ts()
    mention = {"type": "app_mention", "channel": "C0GENERAL", "user": ALICE, "ts": ts}
    mention["text"] = f"<@{BOT_USER_ID}> what is the exchange rate?"
    assert running.slack.event({**mention, "event_ts": ts}).status_code == 200
    call = fake.wait_for("chat.postMessage")[0]
    assert call.args["channel"] == "C0GENERAL" and call.args["thread_ts"] == ts
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 1


def test_a_thumbs_reaction_counts_and_its_removal_withdraws_it(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    _, call = say(running, fake, "my card got stolen")
    reply_ts = call.as_message()["ts"]
    iid, _ = verify_vote(HMAC_SECRET, call.button(UP_ACTION)["value"])

    def reaction(kind: str, name: str, user: str = BOB, item_user: str = BOT_USER_ID) -> int:
        event = {
            "type": kind,
            "user": user,
            "reaction": name,
            "item_user": item_user,
            "item": {"type": "message", "channel": DM_ALICE, "ts": reply_ts},
            "event_ts": new_ts(),
        }
        return running.slack.event(event).status_code

    assert reaction("reaction_added", "heart") == 200  # not a thumb: ignored
    assert reaction("reaction_added", "-1", item_user=ALICE) == 200  # not on a bot message
    assert reaction("reaction_added", "+1::skin-tone-3") == 200
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), 1)], "the +1 vote")
    assert reaction("reaction_added", "-1") == 200
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), -1)], "the -1 vote")

    # removing 👎 while 👍 is still there leaves the 👍 as the vote (reactions.get says so)
    fake.set_reactions(DM_ALICE, reply_ts, {"+1": [BOB]})
    assert reaction("reaction_removed", "-1") == 200
    wait_until(lambda: votes(worker.engine, str(iid)) == [(h(BOB), 1)], "back to +1")
    fake.set_reactions(DM_ALICE, reply_ts, {})
    assert reaction("reaction_removed", "+1") == 200
    wait_until(lambda: votes(worker.engine, str(iid)) == [], "the withdrawal")
    assert fake.count("reactions.get") == 2
    assert worker.count(WITHDRAW_VOTE, lambda kw: kw["interaction_id"] == str(iid)) == 1


def test_slash_command_help_privacy_and_forget(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    carol, dm = "U0CAROL01", "D0CAROL01"
    for text in ("", "help", "HELP me"):
        resp = running.slack.command(text, carol)
        assert resp.status_code == 200 and "/thumbloop forget" in resp.json()["text"]
    privacy = running.slack.command("privacy", carol).json()["text"]
    assert "hash" in privacy
    unknown = running.slack.command("<dance>", carol).json()["text"]
    assert "&lt;dance&gt;" in unknown and "/thumbloop help" in unknown

    _, call = say(running, fake, "what is my exchange rate", user=carol, channel=dm)
    iid, _ = verify_vote(HMAC_SECRET, call.button(UP_ACTION)["value"])
    running.slack.block_actions(carol, dm, call.as_message(), call.button(UP_ACTION))
    wait_until(lambda: votes(worker.engine, str(iid)), "carol's vote")
    wait_until(lambda: interactions(worker.engine, h(carol)), "carol's interaction")
    alice_rows = len(interactions(worker.engine, h(ALICE)))

    resp = running.slack.command("forget", carol)
    assert resp.status_code == 200 and "deleted" in resp.json()["text"]
    wait_until(lambda: not interactions(worker.engine, h(carol)), "carol's rows gone")
    assert votes(worker.engine, str(iid)) == []
    assert len(interactions(worker.engine, h(ALICE))) == alice_rows  # others untouched

    bad = running.slack.post("command=/thumbloop&text=forget&user_id=U1", "x", secret="nope")
    assert bad.status_code == 401


def test_web_api_rate_limits_are_retried_after_retry_after(
    running: Running, fake: FakeSlackApi
) -> None:
    fake.rate_limit("chat.postMessage", retry_after=1)
    ts = new_ts()
    event = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "user": ALICE}
    assert running.slack.event({**event, "text": "change my pin", "ts": ts}).status_code == 200
    limited, delivered = fake.wait_for("chat.postMessage", 2)
    assert limited.response is None  # answered 429 + Retry-After: 1
    assert delivered.response is not None and delivered.response["ok"]
    assert delivered.args["thread_ts"] == ts
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 2  # retried once, delivered once


def test_tokens_are_not_logged(
    running: Running, fake: FakeSlackApi, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    say(running, fake, "my card has not arrived")
    assert caplog.records  # the capture saw the app's (debug) logging
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text


def test_a_message_the_serving_worker_refuses_gets_a_polite_reply(
    running: Running, fake: FakeSlackApi
) -> None:
    ts, call = say(running, fake, "card " * 5000)  # over the serving worker's byte limit (413)
    assert call.args["text"] == REJECTED and call.args["thread_ts"] == ts
    assert "blocks" not in call.args
