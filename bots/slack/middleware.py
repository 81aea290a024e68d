"""bolt middleware and error handling of the Slack adapter: repeat deliveries, and requests bolt
itself cannot make sense of."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.response import BoltResponse

from bots.slack.inbox import is_replay
from bots.slack.state import SlackState

log = logging.getLogger(__name__)


def skip_repeated_events(
    state: SlackState,
) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Answer 200 to an Events API delivery whose ``event_id`` was handled already.

    Slack redelivers (``X-Slack-Retry-Num``) when it did not see a 200 in time; the first
    delivery is still being handled (or waits in the inbox), so the repeat must do nothing.
    """

    async def middleware(
        body: dict[str, Any],
        context: AsyncBoltContext,
        next_: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str):
            first = await state.claim(f"event:{event_id}")
            # a replay (bots/slack/inbox.py) is the delivery an earlier run took and never handled
            if not first and not is_replay(context):
                log.info("repeat delivery of %s ignored", event_id)
                return BoltResponse(status=200, body="")
        return await next_()

    return middleware


async def answer_malformed_with_400(
    error: Exception, response: BoltResponse | None
) -> BoltResponse | None:
    """Bolt's error handler. Found by fuzzing (tests/fuzz): bolt's own middleware and matchers
    raise on well-signed payloads of unexpected shapes (an action list that is empty, an event
    that is a list, ...), and bolt answered those 500. An error raised inside slack_bolt or
    slack_sdk is the request's fault: 400. An error of ours stays a 500, logged in full."""
    tb, last = error.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    module = last.tb_frame.f_globals.get("__name__", "") if last is not None else ""
    if response is not None and module.startswith(("slack_bolt.", "slack_sdk.")):
        log.warning("a malformed request (%s: %s in %s)", type(error).__name__, error, module)
        return BoltResponse(status=400, body="malformed request")
    log.error("a Slack listener failed", exc_info=error)
    return None
