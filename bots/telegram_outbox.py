"""Tasks for the learning queue, handed over without blocking the bot.

``submit`` returns at once; one background task sends in order on a worker thread (the Celery
producer is blocking). When the broker is down the task waits at the head of the line and is
retried with capped exponential backoff, so a user's vote is never shown as an error and never
lost while the bot runs. Tasks still waiting at shutdown are logged as lost; the line is bounded
(oldest dropped first, logged and counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kombu.exceptions import OperationalError

from thumbloop.queue import TaskSender

log = logging.getLogger(__name__)

RETRYABLE: tuple[type[BaseException], ...] = (OperationalError, OSError, TimeoutError)


class Outbox:
    def __init__(
        self,
        sender: TaskSender,
        *,
        max_pending: int = 10_000,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
    ) -> None:
        self.sender = sender
        self.max_pending = max_pending
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="thumbloop-outbox")
        self.sent = self.dropped = self.failed_attempts = 0

    @property
    def pending(self) -> int:
        return len(self._items)

    def submit(self, name: str, kwargs: dict[str, Any]) -> None:
        """Queue one task for sending; must be called from the bot's event loop."""
        if len(self._items) >= self.max_pending:
            dropped, _ = self._items.popleft()
            self.dropped += 1
            log.error("outbox full (%d): dropped the oldest task %s", self.max_pending, dropped)
        self._items.append((name, kwargs))
        self._ensure_started().set()

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
                wake.clear()
                await wake.wait()
                continue
            name, kwargs = self._items[0]
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
                # Not a broker outage (the payload itself failed): retrying cannot help.
                self._items.popleft()
                self.dropped += 1
                log.exception("task %s could not be sent and was dropped", name)
                continue
            self._items.popleft()
            self.sent += 1
            if delay != self.retry_initial_s:
                log.info("queue reachable again; %d task(s) still waiting", len(self._items))
            delay = self.retry_initial_s

    async def drain(self, timeout_s: float) -> bool:
        """Wait until everything submitted was sent (True) or the timeout passed (False)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self._items:
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def aclose(self, timeout_s: float = 5.0) -> None:
        if self._items:
            await self.drain(timeout_s)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._items:
            log.error("%d queued task(s) were not delivered before shutdown", len(self._items))
        self._executor.shutdown(wait=False, cancel_futures=True)
