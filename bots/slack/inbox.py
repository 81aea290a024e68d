"""Slack requests on disk from the moment the bot acknowledges them until they are handled.

Slack redelivers an event, an action or a command only while it is unacknowledged, and it must
be acknowledged within 3 seconds: bolt answers (the HTTP 200, or the Socket Mode envelope's ack)
first and runs the listener after (``process_before_response=False``). A bot killed in between
lost the request without a trace: a message never answered, a vote never counted.

:class:`SlackInbox` writes every request a listener may handle to a
:class:`~bots.common.spool.Spool` before bolt dispatches it (so before it is acknowledged), and
deletes the row once that listener has returned; a request no listener takes (another event
type, the bot's own messages, a repeat delivery) is deleted as soon as bolt has dispatched it.
The next run dispatches what is left, in order and before it takes new requests (:meth:`replay`),
as a Socket Mode request: the stored one was verified when it came, and its HTTP signature
would be stale by now. Handling is at least once, as on Telegram (:mod:`bots.telegram.inbox`):
a message's interaction id comes from the message, a vote is a state, a repeat delivery that
Slack then makes is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bots.common.spool import Spool

log = logging.getLogger(__name__)

ROW = "thumbloop_inbox_row"  # the request's spool row, in bolt's context
TAKEN = "thumbloop_inbox_taken"  # a listener matched the request: it deletes the row
REPLAY = "thumbloop_replay"  # dispatched by a replay: handle it even though it was seen before

# how long a replay waits for one request's listener before it goes on to the next
REPLAY_WAIT_S = 60.0

Dispatch = Callable[[AsyncBoltRequest], Awaitable[BoltResponse]]


def is_replay(context: Mapping[str, Any]) -> bool:
    return bool(context.get(REPLAY))


def _kept(body: Mapping[str, Any]) -> bool:
    """What a listener of ours may take: events, button presses, the slash command (not URL
    verification, not the app's own lifecycle requests)."""
    return body.get("type") in ("event_callback", "block_actions") or "command" in body


class SlackInbox:
    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._open: dict[int, asyncio.Event] = {}  # spool row -> set once handled
        self.left = spool.load()  # what an earlier run did not handle
        self.replayed = 0
        self._closed = False
        if self.left:
            log.warning(
                "%d Slack request(s) an earlier run acknowledged but did not handle found in "
                "%s; handling them first",
                len(self.left),
                spool.path,
            )

    async def dispatch(self, dispatch: Dispatch, req: AsyncBoltRequest) -> BoltResponse:
        """bolt's ``async_dispatch`` of ``req``, with ``req`` on disk until it is handled."""
        row = req.context.get(ROW)
        if row is None and isinstance(req.body, dict) and _kept(req.body):
            row = self.spool.add("request", req.body)
            req.context[ROW] = row
        if row is not None:
            self._open.setdefault(row, asyncio.Event())
        try:
            return await dispatch(req)
        finally:
            if row is not None and not req.context.get(TAKEN):
                self._close(row)

    async def take(self, context: Any, next_: Callable[[], Awaitable[None]]) -> None:
        """Listener middleware (bolt passes arguments by name): the listener it guards took
        the request, so the row stays until :meth:`done`."""
        if context.get(ROW) is not None:
            context[TAKEN] = True
        await next_()

    def done(self, context: Mapping[str, Any]) -> None:
        """The listener has returned (or raised: its error was logged, and replaying it would
        raise again)."""
        row = context.get(ROW)
        if row is not None:
            self._close(row)

    def _close(self, row: int) -> None:
        if self._closed:  # a listener that outlived the bot's stop: its row waits for the next run
            return
        self.spool.remove(row)
        event = self._open.pop(row, None)
        if event is not None:
            event.set()
        if not self._open:
            self.spool.compact()  # nothing owed: no user's message stays in the file

    async def replay(self, dispatch: Dispatch) -> int:
        """Dispatch, one after the other, what an earlier run left; call before taking new
        requests. Each waits for its listener, so a user's later request cannot overtake it.
        ``dispatch`` is bolt's own, without this inbox: the replay wraps it here."""
        left, self.left = self.left, []
        for row, _, body in left:
            context = {ROW: row, REPLAY: True}
            req = AsyncBoltRequest(body=body, context=context, mode="socket_mode")
            self._open[row] = handled = asyncio.Event()
            await self.dispatch(dispatch, req)
            try:
                await asyncio.wait_for(handled.wait(), REPLAY_WAIT_S)
            except TimeoutError:
                log.warning("a replayed Slack request is still being handled; going on")
            self.replayed += 1
        return len(left)

    @property
    def pending(self) -> int:
        return len(self._open)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._open:
            log.warning(
                "%d Slack request(s) not handled yet kept in %s for the next start",
                len(self._open),
                self.spool.path,
            )
        self.spool.close()


__all__ = ["REPLAY", "SlackInbox", "is_replay"]
