"""Tasks for the learning queue, handed over without blocking the bot, kept on disk until sent.

``submit`` returns at once (Slack wants its answer within 3 s, Telegram handlers should not wait
on a broker); one asyncio task sends the items in order on a worker thread (the Celery producer
blocks). While the broker is down the head item waits and is retried with capped exponential
backoff, so a user's vote is never shown as an error.

With a ``spool`` file every item is written to a small SQLite table before ``submit`` returns
and deleted once the broker took it, so a bot that crashes or is killed during a broker outage
sends what it owed when it starts again. Delivery is at least once (a crash between the send and
the delete sends that item again); every learning task is idempotent, so a repeat changes
nothing. Without a spool the line lives in memory and what is unsent at shutdown is logged.

The line is bounded: when full the oldest item is dropped, logged and counted (the newest says
most about what the user wants now). An item the broker refuses for what it is, not because it
is down (say a payload that cannot be serialised), is dropped the same way instead of blocking
the line forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kombu.exceptions import OperationalError

from bots.common.spool import Spool
from thumbloop.queue import TaskSender

log = logging.getLogger(__name__)

# A broker outage; anything else a send raises is about the item itself.
RETRYABLE: tuple[type[BaseException], ...] = (OperationalError, OSError, TimeoutError)


class Outbox:
    def __init__(
        self,
        sender: TaskSender,
        *,
        spool: Path | None = None,
        max_pending: int = 10_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.sender = sender
        self.max_pending = max_pending
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self._spool = Spool(spool) if spool is not None else None
        # (spool row id or 0, task name, kwargs)
        self._items: deque[tuple[int, str, dict[str, Any]]] = deque(
            self._spool.load() if self._spool else ()
        )
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbloop-outbox")
        self.sent = self.dropped = self.failed_attempts = 0
        self.recovered = len(self._items)
        if self._spool and self.recovered:
            log.warning(
                "%d task(s) left unsent by an earlier run found in %s; sending them first",
                self.recovered,
                self._spool.path,
            )

    @property
    def pending(self) -> int:
        return len(self._items)

    def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        """Queue one task for sending (on disk first, with a spool); call it from the bot's
        event loop."""
        item_id = self._spool.add(name, kwargs) if self._spool else 0
        if len(self._items) >= self.max_pending:
            self._drop_head(f"outbox full ({self.max_pending}): dropped the oldest task")
        self._items.append((item_id, name, kwargs))
        self._ensure_started().set()

    def start(self) -> None:
        """Start sending what a spool held from an earlier run (``submit`` also starts it)."""
        if self._items:
            self._ensure_started().set()

    def _drop_head(self, why: str) -> None:
        item_id, name, _ = self._items.popleft()
        if self._spool and item_id:
            self._spool.remove(item_id)
        self.dropped += 1
        log.error("%s: %s", why, name)

    def _ensure_started(self) -> asyncio.Event:
        if self._wake is None or self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._run(self._wake), name="thumbloop-outbox"
            )
        return self._wake

    async def _run(self, wake: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        delay = self.retry_initial_s
        while True:
            if not self._items:
                if self._spool:
                    self._spool.compact()  # what was sent leaves the disk before the line idles
                wake.clear()
                await wake.wait()
                continue
            head = self._items[0]
            item_id, name, kwargs = head
            try:
                await loop.run_in_executor(self._executor, self.sender.send, name, kwargs)
            except RETRYABLE as exc:
                self.failed_attempts += 1
                log.warning(
                    "queue unavailable (%s); %d task(s) waiting, next try in %.1fs",
                    type(exc).__name__,
                    len(self._items),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            except Exception:
                log.exception("task %s could not be sent", name)
                if self._items and self._items[0] is head:
                    self._drop_head("dropped a task that can never be sent")
                continue
            # submit may have dropped this very item meanwhile (full outbox): check first
            if self._items and self._items[0] is head:
                self._items.popleft()
                if self._spool and item_id:
                    self._spool.remove(item_id)
            self.sent += 1
            if delay != self.retry_initial_s:
                log.info("queue reachable again; %d task(s) still waiting", len(self._items))
            delay = self.retry_initial_s

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything submitted was sent (True) or the timeout passed (False)."""
        if self._items:
            self.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._items and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self._items

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Send what can be sent in ``timeout_s``, then stop. What is left stays in the spool
        for the next start (or, without one, is logged as lost)."""
        if self._items:
            await self.drain(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._items:
            if self._spool:
                log.warning(
                    "%d unsent task(s) kept in %s for the next start",
                    len(self._items),
                    self._spool.path,
                )
            else:
                log.error("%d unsent task(s) lost at shutdown", len(self._items))
        if self._spool:
            self._spool.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
