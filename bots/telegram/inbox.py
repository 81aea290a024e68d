"""Updates on disk from the moment Telegram counts them delivered until they are handled.

Telegram forgets an update once the bot confirms it: polling confirms a batch with the offset of
its next ``getUpdates`` call, which python-telegram-bot makes as soon as the batch is in its
update queue, long before the handlers are done with it; a webhook call is confirmed by its 200,
sent the same way. A bot killed in between (or stopped: PTB drops what is still queued at
shutdown) lost those updates without a trace: a message never answered, a vote never counted.

:class:`DurableUpdateQueue` is PTB's update queue with every update written to a
:class:`~bots.common.spool.Spool` before it enters the queue (so before polling confirms it,
and before a webhook call is answered); :class:`DurableApplication` deletes the row once
``process_update`` returned (a handler that raised counts as handled: its error handler ran,
and replaying it would raise again). The next run handles what is left, one update after the
other and before it polls again (:func:`replay`), so a user's later update cannot overtake an
earlier one. Handling is at least once: an update handled just before the kill is handled
again. The handlers are written for that (a message's interaction id comes from the message,
a vote is a state, not an increment), and a replayed update that Telegram then sends again
(it had not been confirmed yet) is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from telegram import Update
from telegram.ext import Application

from bots.common.spool import Spool

log = logging.getLogger(__name__)

# update ids handled by a replay, remembered to skip Telegram's second copy of them; a replay
# holds at most a few polls' worth (100 updates each)
_REMEMBERED = 10_000


def _spoolable(item: object) -> bool:
    """An update as Telegram sends them: its id an integer (found by fuzzing the webhook: PTB
    parses ``{"update_id": {}}`` into an Update, whose id cannot key anything)."""
    return isinstance(item, Update) and type(item.update_id) is int


class DurableUpdateQueue(asyncio.Queue[object]):
    """PTB's update queue, spooled: ``put`` (polling and webhook both use it) returns only after
    the update is on disk."""

    def __init__(self, spool: Spool) -> None:
        super().__init__()
        self.spool = spool
        self._rows: dict[int, int] = {}  # update_id -> spool row
        self._replayed: OrderedDict[int, None] = OrderedDict()
        self.left = spool.load()  # what an earlier run did not handle
        self.replayed = 0
        self.skipped = 0
        if self.left:
            log.warning(
                "%d update(s) an earlier run received but did not handle found in %s; "
                "handling them first",
                len(self.left),
                spool.path,
            )

    def put_nowait(self, item: object) -> None:
        if _spoolable(item):
            assert isinstance(item, Update)
            if item.update_id in self._replayed:
                self.skipped += 1  # handled by the replay; Telegram had not been told yet
                return
            self._rows[item.update_id] = self.spool.add("update", item.to_dict())
        super().put_nowait(item)

    def replaying(self, update: Update, row: int) -> None:
        """``update`` (spool row ``row``) is handled by :func:`replay`: its row goes once it is
        handled, and Telegram's copy of it is skipped."""
        self._rows[update.update_id] = row
        self._replayed[update.update_id] = None
        while len(self._replayed) > _REMEMBERED:
            self._replayed.popitem(last=False)

    def handled(self, update: Update) -> None:
        if not _spoolable(update):
            return
        row = self._rows.pop(update.update_id, None)
        if row is not None:
            self.spool.remove(row)
        if not self._rows:
            self.spool.compact()  # nothing owed: no user's message stays in the file

    @property
    def pending(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        if self._rows:
            log.warning(
                "%d update(s) not handled yet kept in %s for the next start",
                len(self._rows),
                self.spool.path,
            )
        self.spool.close()


class DurableApplication(Application[Any, Any, Any, Any, Any, Any]):
    """An Application whose updates leave the spool only once handled."""

    async def process_update(self, update: object) -> None:
        await super().process_update(update)
        queue = self.update_queue
        if isinstance(update, Update) and isinstance(queue, DurableUpdateQueue):
            queue.handled(update)


async def replay(app: Application[Any, Any, Any, Any, Any, Any]) -> int:
    """Handle, in the order they arrived, the updates an earlier run left in the spool. Call it
    after ``initialize`` and before polling or the webhook starts (``post_init``)."""
    queue = app.update_queue
    if not isinstance(queue, DurableUpdateQueue):
        return 0
    left, queue.left = queue.left, []
    for row, _, data in left:
        update = Update.de_json(data, app.bot)
        queue.replaying(update, row)
        await app.process_update(update)
        queue.replayed += 1
    return len(left)


__all__ = ["DurableApplication", "DurableUpdateQueue", "replay"]
