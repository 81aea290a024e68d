"""Dynamic batching: requests queue up and run together, bounded in size, wait and depth.

The batch function runs in one worker thread (the model is not re-entrant and torch uses all
cores anyway); the event loop stays free to accept requests while a batch runs. Every batch
isolates its own failure, and its output count is checked against its input count.

A batch function may return its outputs at once or yield them in chunks of
``(indices, outputs)``: each chunk's requests are answered as soon as it is done, so their
clients can send their next message while the rest of the batch still runs. Without that, a
closed loop of clients leaves the model idle while the whole batch's responses go out and the
next requests come in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


class QueueFull(RuntimeError):
    """The queue is at capacity: shed load (HTTP 503 + Retry-After)."""


class DeadlineExceeded(TimeoutError):
    """The request waited past its deadline before its batch ran (HTTP 504)."""


class BatchFailed(RuntimeError):
    """The batch this request was in failed (HTTP 500); other batches are unaffected."""


@dataclass
class _Pending(Generic[In, Out]):
    payload: In
    future: asyncio.Future[Out]
    deadline: float
    enqueued: float = field(default_factory=time.perf_counter)


Chunk = tuple[Sequence[int], Sequence[Out]]


@dataclass
class BatchStats:
    size: int
    seconds: float
    queue_wait: float


class DynamicBatcher(Generic[In, Out]):
    def __init__(
        self,
        process: Callable[[Sequence[In]], Sequence[Out] | Iterator[Chunk[Out]]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self._process = process
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self._queue: asyncio.Queue[_Pending[In, Out]] = asyncio.Queue(maxsize=max_queue)
        self._on_batch = on_batch
        self._on_expired = on_expired
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")
        self._task: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(BatchFailed("server shutting down"))
        self._executor.shutdown(wait=True)
        await asyncio.sleep(0)  # let the last batch's posted results and stats land

    async def submit(self, payload: In, timeout: float) -> Out:
        loop = asyncio.get_running_loop()
        item: _Pending[In, Out] = _Pending(
            payload, loop.create_future(), time.perf_counter() + timeout
        )
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull as exc:
            raise QueueFull(f"queue is full ({self._queue.maxsize} waiting)") from exc
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), timeout)
        except TimeoutError as exc:
            raise DeadlineExceeded(f"no result within {timeout:.1f} s") from exc

    async def _collect(self) -> list[_Pending[In, Out]]:
        first = await self._queue.get()
        batch = [first]
        until = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch_size:
            # take what is already waiting without yielding, then wait out the window
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = until - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            now = time.perf_counter()
            live = [p for p in batch if not p.future.done() and p.deadline > now]
            expired = [p for p in batch if p not in live]
            for p in expired:
                if not p.future.done():
                    p.future.set_exception(DeadlineExceeded("deadline passed while queued"))
            if expired and self._on_expired:
                self._on_expired(len(expired))
            if not live:
                continue
            try:
                await loop.run_in_executor(self._executor, self._run, live, loop)
            except Exception as exc:  # isolate: this batch fails, the loop goes on
                log.exception("batch of %d failed", len(live))
                err = (
                    exc if isinstance(exc, BatchFailed) else BatchFailed(f"inference failed: {exc}")
                )
                for p in live:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue

    def _run(self, live: list[_Pending[In, Out]], loop: asyncio.AbstractEventLoop) -> None:
        """In the batch thread: run the batch and hand each chunk's results to the event loop
        as soon as it is ready. Every input must get exactly one output."""
        start = time.perf_counter()
        result = self._process([p.payload for p in live])
        chunks: Iterator[Chunk[Out]] = (
            iter([(range(len(live)), result)]) if isinstance(result, Sequence) else result
        )
        answered = [False] * len(live)
        for indices, outputs in chunks:
            if len(indices) != len(outputs) or any(
                not 0 <= i < len(live) or answered[i] for i in indices
            ):
                raise BatchFailed(
                    f"batch returned {len(outputs)} outputs for inputs {list(indices)} "
                    f"of {len(live)}"
                )
            for i in indices:
                answered[i] = True
            done = [(live[i].future, out) for i, out in zip(indices, outputs, strict=True)]
            loop.call_soon_threadsafe(_resolve, done)
        if not all(answered):
            raise BatchFailed(f"batch returned {sum(answered)} outputs for {len(live)} inputs")
        if self._on_batch:
            wait = sum(start - p.enqueued for p in live) / len(live)
            stats = BatchStats(len(live), time.perf_counter() - start, wait)
            loop.call_soon_threadsafe(self._on_batch, stats)


def _resolve(done: list[tuple[asyncio.Future[Out], Out]]) -> None:
    for future, out in done:
        if not future.done():
            future.set_result(out)
