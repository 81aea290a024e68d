"""Dynamic batching: requests queue up and run together, bounded in size, wait and depth.

One model thread pulls its own work (the model is not re-entrant and torch uses all cores
anyway): when a batch ends it takes the oldest waiting requests, with no trip through the
event loop. A batch that is not full waits up to ``max_wait_ms`` for company, counted from
when the model became free or from its oldest request's arrival, whichever is later: the
clients the last batch answered are on their way back, and on a small machine those few
milliseconds also let the event loop read them without competing with a forward pass for the
cores, so fuller batches run with the cores to themselves. The wait after a busy batch is
capped at a tenth of that batch's time, so a fast (GPU) model idles little. While requests
come one at a time (the last batch held one) nobody else is coming to share the batch, so a
lone request runs at once. Batches are taken in arrival order: the model's forward skips
padding (``thumbloop.model.unpadded``), so there is nothing to gain from regrouping requests by
length, and first-come-first-served keeps the tail short. The event loop only enqueues and
answers. Every batch isolates its own failure, and its output count is checked against its
input count.

A batch function may return its outputs at once or yield them in chunks of
``(indices, outputs)``: each chunk's requests are answered as soon as it is done, so their
clients can send their next message while the rest of the batch still runs.

Several batch functions make several lanes (one thread each, e.g. one per model process,
:mod:`serving.pool`): a lane that finds others idle takes only its share of what waits, so a
burst is spread over all of them instead of queueing behind one.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

In = TypeVar("In")
Out = TypeVar("Out")


IDLE_SHARE = 0.1  # a busy model waits for company at most this share of its last batch's time


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
BatchFn = Callable[[Sequence[In]], Sequence[Out] | Iterator[Chunk[Out]]]


@dataclass
class _Lane(Generic[In, Out]):
    process: BatchFn[In, Out]
    free_since: float = 0.0  # when this lane last finished a batch
    last_seconds: float = 0.0  # and how long that batch took
    thread: threading.Thread | None = None


@dataclass
class BatchStats:
    size: int
    seconds: float
    queue_wait: float


class DynamicBatcher(Generic[In, Out]):
    def __init__(
        self,
        process: BatchFn[In, Out] | Sequence[BatchFn[In, Out]],
        *,
        max_batch_size: int,
        max_wait_ms: float,
        max_queue: int,
        on_batch: Callable[[BatchStats], None] | None = None,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        fns = list(process) if isinstance(process, Sequence) else [process]
        if not fns:
            raise ValueError("at least one batch function is needed")
        self._lanes: list[_Lane[In, Out]] = [_Lane(fn) for fn in fns]
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._on_expired = on_expired
        self._pending: deque[_Pending[In, Out]] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._last_size = 0  # quiet until traffic shows otherwise
        self._idle = 0  # lanes waiting for work
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def depth(self) -> int:
        return len(self._pending)

    @property
    def lanes(self) -> int:
        return len(self._lanes)

    @property
    def idle_lanes(self) -> int:
        """Lanes waiting for work (the rest are running a batch)."""
        return self._idle

    def start(self) -> None:
        if self._lanes[0].thread is None:
            self._loop = asyncio.get_running_loop()
            self._stopping = False
            for k, lane in enumerate(self._lanes):
                lane.thread = threading.Thread(
                    target=self._work, args=(lane,), name=f"batch-{k}", daemon=True
                )
                lane.thread.start()

    async def stop(self) -> None:
        """Let the running batches finish; fail what is still waiting."""
        if self._lanes[0].thread is not None:
            with self._cond:
                self._stopping = True
                self._cond.notify_all()
            for lane in self._lanes:
                if lane.thread is not None:
                    await asyncio.to_thread(lane.thread.join)
                    lane.thread = None
        with self._cond:
            left = list(self._pending)
            self._pending.clear()
        for item in left:
            if not item.future.done():
                item.future.set_exception(BatchFailed("server shutting down"))
        await asyncio.sleep(0)  # let the last batch's posted results and stats land

    async def submit(self, payload: In, timeout: float) -> Out:
        loop = asyncio.get_running_loop()
        item: _Pending[In, Out] = _Pending(
            payload, loop.create_future(), time.perf_counter() + timeout
        )
        with self._cond:
            if len(self._pending) >= self.max_queue:
                raise QueueFull(f"queue is full ({self.max_queue} waiting)")
            self._pending.append(item)
            self._cond.notify()
        # a timer on the future itself: wait_for(shield(...)) costs two extra futures and a
        # task per request on the event loop, which shares the cores with the model
        timer = loop.call_later(timeout, _expire_one, item.future, timeout)
        try:
            return await item.future
        finally:
            timer.cancel()

    def _take(self, lane: _Lane[In, Out]) -> list[_Pending[In, Out]] | None:
        """The lane's next batch, oldest first; None when stopping. A batch runs once it is
        full or ``max_wait`` has passed since its oldest request's arrival or, when that request
        queued during the lane's last batch, since that batch ended (capped at ``IDLE_SHARE`` of
        the batch's time); at once while traffic comes one request at a time. With other lanes
        idle it takes an equal share of what waits and wakes the next lane for the rest."""
        with self._cond:
            self._idle += 1
            try:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                wait = self.max_wait if self._last_size > 1 else 0.0
                first = self._pending[0].enqueued if self._pending else 0.0
                if first < lane.free_since:
                    # queued while the lane was busy: wait from the end of that batch, but idle
                    # at most a share of its time (a GPU batch may take only milliseconds)
                    until = lane.free_since + min(wait, IDLE_SHARE * lane.last_seconds)
                else:
                    until = first + wait
                while len(self._pending) < self.max_batch_size and not self._stopping:
                    remaining = until - time.perf_counter()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._stopping:
                    return None
                share = math.ceil(len(self._pending) / self._idle)
                n = min(share, self.max_batch_size)
                self._last_size = n
                batch = [self._pending.popleft() for _ in range(n)]
                if self._pending:
                    self._cond.notify()  # an idle lane takes the rest
                return batch
            finally:
                self._idle -= 1

    def _work(self, lane: _Lane[In, Out]) -> None:
        loop = self._loop
        assert loop is not None
        while (batch := self._take(lane)) is not None:
            now = time.perf_counter()
            live: list[_Pending[In, Out]] = []
            expired: list[_Pending[In, Out]] = []
            for p in batch:
                (live if not p.future.done() and p.deadline > now else expired).append(p)
            if expired:
                loop.call_soon_threadsafe(self._expire, expired)
            if not live:
                continue
            start = time.perf_counter()
            try:
                self._run(lane, live, loop)
            except Exception as exc:  # isolate: this batch fails, the loop goes on
                log.exception("batch of %d failed", len(live))
                err = (
                    exc if isinstance(exc, BatchFailed) else BatchFailed(f"inference failed: {exc}")
                )
                loop.call_soon_threadsafe(_fail, live, err)
            finally:
                lane.free_since = time.perf_counter()
                lane.last_seconds = lane.free_since - start

    def _expire(self, expired: list[_Pending[In, Out]]) -> None:
        for p in expired:
            if not p.future.done():
                p.future.set_exception(DeadlineExceeded("deadline passed while queued"))
        if self._on_expired:
            self._on_expired(len(expired))

    def _run(
        self, lane: _Lane[In, Out], live: list[_Pending[In, Out]], loop: asyncio.AbstractEventLoop
    ) -> None:
        """Run the batch and hand each chunk's results to the event loop as soon as it is
        ready. Every input must get exactly one output."""
        start = time.perf_counter()
        result = lane.process([p.payload for p in live])
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


def _expire_one(future: asyncio.Future[Out], timeout: float) -> None:
    if not future.done():
        future.set_exception(DeadlineExceeded(f"no result within {timeout:.1f} s"))


def _resolve(done: list[tuple[asyncio.Future[Out], Out]]) -> None:
    for future, out in done:
        if not future.done():
            future.set_result(out)


def _fail(items: Sequence[_Pending[In, Out]], err: BaseException) -> None:
    for p in items:
        if not p.future.done():
            p.future.set_exception(err)
