"""Votes through the whole loop: the buttons (recorded once, shown, replaced by a re-vote; forged
values refused) and thumbs reactions (counted, and withdrawn when removed)."""

from __future__ import annotations

import time
import uuid

import pytest

from bots.common.signing import SigningKeys, sign_vote, verify_vote
from bots.slack.texts import DOWN_ACTION, STATUS_BLOCK_ID, UP_ACTION, VOTE_BLOCK_ID
from tests.integration.bots.slack.loop import (
    ALICE,
    BOB,
    DM_ALICE,
    KEYS,
    Running,
    Worker,
    h,
    new_ts,
    say,
    votes,
    wait_until,
)
from tests.integration.fakes.slack_api import BOT_USER_ID, FakeSlackApi
from thumbloop.task_names import RECORD_VOTE, WITHDRAW_VOTE

pytestmark = [pytest.mark.redis]


def test_a_button_vote_is_recorded_once_shown_and_replaced_by_a_revote(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    _, call = say(running, fake, "what is the exchange rate for euros")
    message = call.as_message()
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])

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
    forged = sign_vote(SigningKeys("not-our-secret"), forged_iid, 1)
    real_iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
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
    # the bot queues the vote before it edits the message, so the worker may store it first
    fake.wait_for("chat.update", 1)
    assert fake.count("chat.update") == 1


def test_a_thumbs_reaction_counts_and_its_removal_withdraws_it(
    running: Running, fake: FakeSlackApi, worker: Worker
) -> None:
    _, call = say(running, fake, "my card got stolen")
    reply_ts = call.as_message()["ts"]
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])

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
    assert fake.count("reactions.get") == 4  # each thumb on the reply reads it back
    assert worker.count(WITHDRAW_VOTE, lambda kw: kw["interaction_id"] == str(iid)) == 1
