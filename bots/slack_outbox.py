"""Tasks for the learning side, sent in the background and retried while the broker is down.

Handlers call :meth:`Outbox.submit` and return at once (Slack wants an answer within 3 s); one
asyncio task sends the items in order through a :class:`thumbloop.queue.TaskSender`, retrying
the head item with capped exponential backoff until the broker takes it. A full outbox drops the
new item, logged and counted, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from thumbloop.queue import TaskSender

log = logging.getLogger(__name__)


class Outbox:
    def __init__(
        self,
        sender: TaskSender,
        *,
        max_pending: int = 10_000,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.sender = sender
        self.max_pending = max_pending
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed_attempts = 0
        self.dropped = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def submit(self, name: str, kwargs: dict[str, Any]) -> bool:
        """Queue a task; returns False (logged, counted) when the outbox is full.

        Must be called from the event loop the outbox's worker runs on.
        """
        if len(self._items) >= self.max_pending:
            self.dropped += 1
            log.error("outbox full (%d pending): dropped %s", len(self._items), name)
            return False
        self._items.append((name, kwargs))
        self._ensure_worker()
        assert self._wakeup is not None
        self._wakeup.set()
        return True

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="thumbloop-slack-outbox"
            )

    async def _run(self) -> None:
        assert self._wakeup is not None
        delay = self.backoff_s
        while True:
            if not self._items:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            name, kwargs = self._items[0]
            try:
                task_id = await asyncio.to_thread(self.sender.send, name, kwargs)
            except Exception as exc:  # broker down: keep the item, try again later
                self.failed_attempts += 1
                log.warning(
                    "queue unavailable (%s); %d task(s) waiting, retry in %.1fs",
                    type(exc).__name__,
                    len(self._items),
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
                continue
            self._items.popleft()
            self.sent += 1
            delay = self.backoff_s
            log.debug("sent %s as %s", name, task_id)

    async def drain(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued is sent (True), or give up after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._items and loop.time() < deadline:
            await asyncio.sleep(0.05)
        return not self._items

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Drain what can be sent in ``timeout_s``, then stop; what is left is logged."""
        await self.drain(timeout_s)
        if self._items:
            log.error("outbox closed with %d unsent task(s)", len(self._items))
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
