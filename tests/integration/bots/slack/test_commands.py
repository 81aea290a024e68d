"""The /thumbloop command through the whole loop: help, privacy, and forget (the asking user's
rows only)."""

from __future__ import annotations

import pytest

from bots.common.signing import verify_vote
from bots.slack.texts import UP_ACTION
from tests.integration.bots.slack.loop import (
    ALICE,
    KEYS,
    Running,
    Worker,
    h,
    interactions,
    say,
    votes,
    wait_until,
)
from tests.integration.fakes.slack_api import FakeSlackApi

pytestmark = [pytest.mark.redis]


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
    iid, _ = verify_vote(KEYS, call.button(UP_ACTION)["value"])
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
