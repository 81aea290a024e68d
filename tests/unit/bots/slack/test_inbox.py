"""The Slack inbox's bookkeeping on a real spool file, with bolt's dispatch played by a function:
what is kept, when a row goes, the order of a replay, and a stop with listeners still running.
The kill of a real bot process is in tests/integration/bots/slack/test_inbox.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bots.common.spool import Spool
from bots.slack.inbox import REPLAY, SlackInbox, is_replay

EVENT = {"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "text": "hi"}}
PRESS = {"type": "block_actions", "actions": [{"action_id": "thumbloop_vote_up"}]}
COMMAND = {"command": "/thumbloop", "text": "help", "user_id": "U1"}


def _request(body: dict[str, Any]) -> AsyncBoltRequest:
    return AsyncBoltRequest(body=body, mode="socket_mode")


def _rows(path: Path) -> list[dict[str, Any]]:
    spool = Spool(path)
    try:
        return [body for _, _, body in spool.load()]
    finally:
        spool.close()


def test_a_request_no_listener_takes_is_not_left_behind(tmp_path: Path) -> None:
    inbox = SlackInbox(Spool(tmp_path / "slack.sqlite"))

    async def unmatched(req: AsyncBoltRequest) -> BoltResponse:
        assert inbox.pending == 1  # on disk while bolt dispatches it
        return BoltResponse(status=404, body="")

    for body in (EVENT, PRESS, COMMAND):
        assert asyncio.run(inbox.dispatch(unmatched, _request(body))).status == 404
    assert inbox.pending == 0
    inbox.close()
    assert _rows(tmp_path / "slack.sqlite") == []


def test_a_taken_request_stays_until_its_listener_is_done(tmp_path: Path) -> None:
    inbox = SlackInbox(Spool(tmp_path / "slack.sqlite"))
    taken: list[Any] = []

    async def matched(req: AsyncBoltRequest) -> BoltResponse:
        async def next_() -> None:
            taken.append(req.context)

        await inbox.take(req.context, next_)  # the listener middleware bolt runs
        return BoltResponse(status=200, body="")

    async def go() -> None:
        await inbox.dispatch(matched, _request(EVENT))
        # a URL verification is bolt's own business: never spooled
        await inbox.dispatch(matched, _request({"type": "url_verification", "challenge": "x"}))

    asyncio.run(go())
    assert len(taken) == 2 and inbox.pending == 1
    inbox.close()  # a stop with the listener still running: it stays for the next run
    inbox.done(taken[0])  # the late listener's return changes nothing now
    assert _rows(tmp_path / "slack.sqlite") == [EVENT]

    again = SlackInbox(Spool(tmp_path / "slack.sqlite"))
    assert [body for _, _, body in again.left] == [EVENT]
    again.close()


def test_a_replay_goes_in_order_each_waiting_for_its_listener(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "slack.sqlite")
    for body in (EVENT, PRESS, COMMAND):
        spool.add("request", body)
    spool.close()
    inbox = SlackInbox(Spool(tmp_path / "slack.sqlite"))
    handled: list[dict[str, Any]] = []
    running: list[asyncio.Future[None]] = []

    async def matched(req: AsyncBoltRequest) -> BoltResponse:
        assert is_replay(req.context) and req.context[REPLAY]

        async def listener() -> None:  # runs after the ack, as bolt runs it
            await asyncio.sleep(0.05)
            handled.append(req.body)
            inbox.done(req.context)

        async def next_() -> None:
            running.append(asyncio.ensure_future(listener()))

        await inbox.take(req.context, next_)
        return BoltResponse(status=200, body="")

    assert asyncio.run(inbox.replay(matched)) == 3
    assert handled == [EVENT, PRESS, COMMAND]
    assert (inbox.replayed, inbox.pending, inbox.left) == (3, 0, [])
    inbox.close()
    assert _rows(tmp_path / "slack.sqlite") == []
