"""The follow-up after a 👎 (and under a reply that asked to clarify) on Slack: the real bolt app
over HTTP with signed deliveries, the local Web API, a scripted serving worker (so the ranking
is known) and the Redis broker, whose queue the tests read. Choices shown, a pick answered in the
thread and queued as a correction, a change of mind, a withdrawal, a 👍 that drops it, forged,
altered and moved values refused, a redelivered press counted once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bots.common import followup as fu
from bots.common.signing import SigningKeys, sign_choice, verify_vote
from bots.slack.app import build_http_app, build_slack_bot
from bots.slack.texts import (
    DOWN_ACTION,
    FOLLOWUP_BLOCK_ID,
    FORGED_CHOICE,
    TICK,
    UP_ACTION,
)
from tests.integration.bots.slack.loop import ALICE, DM_ALICE, new_ts
from tests.integration.bots.telegram.alone import queued_tasks
from tests.integration.fakes.serving import answer_text, run_scripted_serving
from tests.integration.fakes.slack_api import (
    BOT_TOKEN,
    BOT_USER_ID,
    Call,
    FakeSlackApi,
    SlackDelivery,
)
from tests.integration.servers import run_uvicorn
from tests.services import redis_url
from thumbloop.identity import hash_id
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, RECORD_CORRECTION, WITHDRAW_CORRECTION

pytestmark = [pytest.mark.redis]

BROKER = redis_url(10)  # this module's own broker database: its queue is emptied per test
SIGNING_SECRET = "slack-followup-signing-secret"
ID_KEY = "slack-followup-id-key"
SIGNING_KEY = "slack-followup-signing-key"
KEYS = SigningKeys(SIGNING_KEY)
CHARGED = "I was charged twice for the same coffee"
UNSURE = "something about my money"


@pytest.fixture(scope="module")
def bot(slack_api: FakeSlackApi, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with run_scripted_serving({"charged_twice", "pending_card_payment", "refund"}) as (
        scripted,
        url,
    ):
        scripted.says(
            CHARGED,
            [("charged_twice", 0.7), ("pending_card_payment", 0.2), ("refund", 0.06)],
            "charged_twice_1",
        )
        scripted.says(
            UNSURE,
            [("refund", 0.4), ("pending_card_payment", 0.3), ("out_of_scope", 0.2)],
            "oos_1+clarify:refund|pending_card_payment",
        )
        home: Path = tmp_path_factory.mktemp("slack-followup")
        settings = Settings(
            home=home,
            slack_bot_token=BOT_TOKEN,
            slack_signing_secret=SIGNING_SECRET,
            slack_api_url=slack_api.base_url,
            serving_url=url,
            broker_url=BROKER,
            id_key=ID_KEY,
            signing_key=SIGNING_KEY,
        )
        app = build_slack_bot(settings, http=True, outbox_backoff_s=0.2)
        with run_uvicorn(build_http_app(app), ready_path="/healthz") as base:
            yield scripted, SlackDelivery(f"{base}/slack/events", SIGNING_SECRET)


@pytest.fixture
def broker() -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(BROKER)
    r.delete(DEFAULT_QUEUE)
    yield r
    r.delete(DEFAULT_QUEUE)
    r.close()


def corrections(broker: redis.Redis) -> list[tuple[str, dict[str, Any]]]:
    """The correction tasks waiting in the broker, oldest first (kombu pushes to the head)."""
    wanted = (RECORD_CORRECTION, WITHDRAW_CORRECTION)
    return [(n, kw) for n, kw in reversed(queued_tasks(broker)) if n in wanted]


def say(slack: SlackDelivery, fake: FakeSlackApi, text: str) -> Call:
    before = fake.count("chat.postMessage")
    ts = new_ts()
    event = {"type": "message", "channel_type": "im", "channel": DM_ALICE, "user": ALICE}
    assert slack.event({**event, "text": text, "ts": ts, "event_ts": ts}).status_code == 200
    return fake.wait_for("chat.postMessage", before + 1)[before]


def choice_buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [b for b in blocks if b.get("block_id") == FOLLOWUP_BLOCK_ID]
    return list(found[0]["elements"]) if found else []


def press(
    slack: SlackDelivery, message: dict[str, Any], button: dict[str, Any], block_id: str
) -> None:
    action = {"action_id": button["action_id"], "block_id": block_id, "value": button["value"]}
    assert slack.block_actions(ALICE, DM_ALICE, message, action).status_code == 200


def labelled(blocks: list[dict[str, Any]], label: str) -> dict[str, Any]:
    for button in choice_buttons(blocks):
        if button["text"]["text"].removeprefix(f"{TICK} ") == label:
            return button
    raise AssertionError(f"no choice {label!r}")


def test_a_downvote_shows_choices_and_a_pick_answers_in_the_thread_and_is_queued(
    bot: Any, fake: FakeSlackApi, broker: redis.Redis
) -> None:
    scripted, slack = bot
    call = say(slack, fake, CHARGED)
    assert choice_buttons(call.args["blocks"]) == [], "no follow-up before a 👎"
    message = call.as_message()
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])

    press(slack, message, call.button(DOWN_ACTION), "thumbloop_vote")
    update = fake.wait_for("chat.update")[0]
    shown = choice_buttons(update.args["blocks"])
    assert [b["text"]["text"] for b in shown] == [
        "pending card payment",
        "refund",
        fu.SOMETHING_ELSE,
        fu.DIDNT_HELP,
    ]
    message = {**message, "blocks": update.args["blocks"]}

    press(slack, message, labelled(message["blocks"], "refund"), FOLLOWUP_BLOCK_ID)
    answer = fake.wait_for("chat.postMessage", 2)[1]
    assert answer.args["text"] == answer_text("refund")
    assert answer.args["thread_ts"] == message["ts"] and answer.args["channel"] == DM_ALICE
    ticked = fake.wait_for("chat.update", 2)[1]
    assert labelled(ticked.args["blocks"], "refund")["text"]["text"] == f"{TICK} refund"
    assert scripted.answered[-1].intent == "refund"
    assert scripted.answered[-1].platform == "slack"
    made = wait_for_corrections(broker, 1)[0][1]["correction"]
    assert made["interaction_id"] == str(iid) and made["rater"] == hash_id(ID_KEY, "slack", ALICE)
    assert (made["kind"], made["label"], made["platform"]) == ("intent", "refund", "slack")


def wait_for_corrections(broker: redis.Redis, n: int) -> list[tuple[str, dict[str, Any]]]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = corrections(broker)
        if len(found) >= n:
            return found
        time.sleep(0.05)
    raise AssertionError(f"expected {n} correction task(s), saw {len(corrections(broker))}")


def test_change_of_mind_withdrawal_and_a_thumbs_up_that_drops_the_pick(
    bot: Any, fake: FakeSlackApi, broker: redis.Redis
) -> None:
    scripted, slack = bot
    answered = len(scripted.answered)  # the serving fake is the module's
    call = say(slack, fake, CHARGED)
    message = call.as_message()
    press(slack, message, call.button(DOWN_ACTION), "thumbloop_vote")
    message = {**message, "blocks": fake.wait_for("chat.update")[0].args["blocks"]}

    for n, label in enumerate((fu.SOMETHING_ELSE, fu.DIDNT_HELP, fu.DIDNT_HELP), start=2):
        press(slack, message, labelled(message["blocks"], label), FOLLOWUP_BLOCK_ID)
        fake.wait_for("chat.update", n)  # handled before the next press
    queued = wait_for_corrections(broker, 3)
    assert [n for n, _ in queued] == [RECORD_CORRECTION, RECORD_CORRECTION, WITHDRAW_CORRECTION]
    assert [kw["correction"]["kind"] for _, kw in queued[:2]] == ["other", "unhelpful"]
    last = fake.wait_for("chat.update", 4)[3]
    assert not any(TICK in b["text"]["text"] for b in choice_buttons(last.args["blocks"]))
    assert fake.count("chat.postMessage") == 1 and len(scripted.answered) == answered

    press(slack, message, labelled(message["blocks"], fu.SOMETHING_ELSE), FOLLOWUP_BLOCK_ID)
    fake.wait_for("chat.update", 5)
    press(slack, message, call.button(UP_ACTION), "thumbloop_vote")
    flipped = fake.wait_for("chat.update", 6)[5]
    assert choice_buttons(flipped.args["blocks"]) == [], "a 👍 drops the follow-up"
    assert wait_for_corrections(broker, 5)[-1][0] == WITHDRAW_CORRECTION


def test_a_thumbs_down_reaction_shows_the_choices_and_a_thumbs_up_drops_them(
    bot: Any, fake: FakeSlackApi, broker: redis.Redis
) -> None:
    """A :-1: reaction is a 👎 like the button: the reply gets the same choices (read back with
    ``reactions.get``, the message as Slack holds it), and a pick made there counts."""
    _, slack = bot
    call = say(slack, fake, CHARGED)
    ts = call.as_message()["ts"]

    def react(kind: str, name: str) -> None:
        item = {"type": "message", "channel": DM_ALICE, "ts": ts}
        event = {"type": kind, "user": ALICE, "reaction": name, "item_user": BOT_USER_ID}
        assert slack.event({**event, "item": item, "event_ts": new_ts()}).status_code == 200

    react("reaction_added", "-1::skin-tone-2")
    update = fake.wait_for("chat.update")[0]
    assert update.args["ts"] == ts and update.args["text"] == call.args["text"]
    assert [b["text"]["text"] for b in choice_buttons(update.args["blocks"])][-2:] == [
        fu.SOMETHING_ELSE,
        fu.DIDNT_HELP,
    ]
    message = {**call.as_message(), "blocks": update.args["blocks"]}
    press(slack, message, labelled(message["blocks"], "refund"), FOLLOWUP_BLOCK_ID)
    made = wait_for_corrections(broker, 1)[0][1]["correction"]
    assert (made["kind"], made["label"]) == ("intent", "refund")
    updates = len(fake.wait_for("chat.update", 2))

    # the 👎 taken back and a 👍 put on: the pick is withdrawn and the choices go
    fake.set_reactions(DM_ALICE, ts, {"+1": [ALICE]})
    react("reaction_removed", "-1::skin-tone-2")
    flipped = fake.wait_for("chat.update", updates + 1)[updates]
    assert choice_buttons(flipped.args["blocks"]) == [], "a 👍 drops the follow-up"
    assert wait_for_corrections(broker, 2)[-1][0] == WITHDRAW_CORRECTION
    # a thumb that changes nothing on the message edits nothing
    react("reaction_added", "+1")
    time.sleep(0.5)
    assert fake.count("chat.update") == updates + 1


def test_forged_altered_moved_and_repeated_presses_are_refused_or_ignored(
    bot: Any, fake: FakeSlackApi, broker: redis.Redis
) -> None:
    scripted, slack = bot
    answered = len(scripted.answered)
    call = say(slack, fake, CHARGED)
    other = say(slack, fake, UNSURE)
    message = call.as_message()
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
    press(slack, message, call.button(DOWN_ACTION), "thumbloop_vote")
    message = {**message, "blocks": fake.wait_for("chat.update")[0].args["blocks"]}
    genuine = labelled(message["blocks"], fu.SOMETHING_ELSE)
    parts = genuine["value"].split(".")
    moved = labelled(other.args["blocks"], "refund")
    for button in (
        {**genuine, "value": sign_choice(SigningKeys("not-ours"), iid, "o")},
        {**genuine, "value": ".".join([*parts[:3], "h", parts[4]])},
        {**genuine, "action_id": "thumbloop_choice_h"},  # value and button disagree
        {**moved, "action_id": moved["action_id"]},  # another reply's value on this one
    ):
        press(slack, message, button, FOLLOWUP_BLOCK_ID)
    notices = fake.wait_for("chat.postEphemeral", 4)
    assert {c.args["text"] for c in notices} == {FORGED_CHOICE}

    # one genuine press, delivered twice with the same action_ts: one correction, one answer
    payload_action = {
        **labelled(message["blocks"], "pending card payment"),
        "block_id": FOLLOWUP_BLOCK_ID,
    }
    payload_action.pop("text", None)
    payload_action.pop("type", None)
    stamp = f"{time.time():.6f}"
    for _ in range(2):
        sent = slack.block_actions(ALICE, DM_ALICE, message, {**payload_action, "action_ts": stamp})
        assert sent.status_code == 200
    fake.wait_for("chat.postMessage", 3)
    time.sleep(0.5)
    assert fake.count("chat.postMessage") == 3, "two replies and one answer"
    queued = wait_for_corrections(broker, 1)
    assert [kw["correction"]["label"] for _, kw in queued] == ["pending_card_payment"]
    assert len(scripted.answered) == answered + 1


def test_an_unsure_reply_offers_its_choices_at_once(
    bot: Any, fake: FakeSlackApi, broker: redis.Redis
) -> None:
    _, slack = bot
    call = say(slack, fake, UNSURE)
    shown = [b["text"]["text"] for b in choice_buttons(call.args["blocks"])]
    assert shown == ["refund", "pending card payment", fu.SOMETHING_ELSE]
    message = call.as_message()
    press(slack, message, labelled(message["blocks"], "pending card payment"), FOLLOWUP_BLOCK_ID)
    answer = fake.wait_for("chat.postMessage", 2)[1]
    assert answer.args["text"] == answer_text("pending_card_payment")
    made = wait_for_corrections(broker, 1)[0][1]["correction"]
    assert (made["kind"], made["label"]) == ("intent", "pending_card_payment")
