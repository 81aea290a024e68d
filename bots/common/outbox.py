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
import fcntl
import json
import logging
import sqlite3
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kombu.exceptions import OperationalError

from thumbloop.queue import TaskSender

log = logging.getLogger(__name__)

# A broker outage; anything else a send raises is about the item itself.
RETRYABLE: tuple[type[BaseException], ...] = (OperationalError, OSError, TimeoutError)


def spool_path(home: Path, platform: str) -> Path:
    """Where a bot keeps its unsent tasks: one file per platform under the Thumbloop home."""
    return home / "outbox" / f"{platform}.sqlite"


class _Spool:
    """The outbox's items on disk: one row each, in submit order.

    One process owns a spool file at a time (an exclusive ``flock`` on a lock file beside it,
    released by the kernel when the process dies). A second bot on the same home and platform
    takes the next free slot (``telegram-1.sqlite``, ...) instead of sending the first one's
    rows twice; whoever starts later on a free slot sends what a dead owner left there."""

    SLOTS = 16

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for slot in range(self.SLOTS):
            candidate = path if slot == 0 else path.with_stem(f"{path.stem}-{slot}")
            lock = candidate.with_name(candidate.name + ".lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self.path, self._lock = candidate, lock
            break
        else:
            raise RuntimeError(f"all {self.SLOTS} outbox spools beside {path} are in use")
        # used from the bot's event loop only, which may not be the thread that built it
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash, not power loss
        # rows hold users' messages: overwrite them when deleted, so no copy lingers in the file
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, kwargs TEXT NOT NULL)"
        )

    def load(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db.execute("SELECT id, name, kwargs FROM outbox ORDER BY id").fetchall()
        return [(int(i), str(n), json.loads(k)) for i, n, k in rows]

    def add(self, name: str, kwargs: dict[str, Any]) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (name, kwargs) VALUES (?, ?)", (name, json.dumps(kwargs))
        )
        return int(cur.lastrowid or 0)

    def remove(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def compact(self) -> None:
        """Fold the write-ahead log into the file and empty it. ``secure_delete`` overwrites a
        deleted row in the database file, but the log still holds the frames that wrote it (a
        user's message) until a checkpoint: called whenever the line is empty, so nothing sent
        stays on disk."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.compact()
        self._db.close()
        self._lock.close()


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
        self._spool = _Spool(spool) if spool is not None else None
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
