"""Per-(intent, response) Beta posteriors of "this reply earns a 👍".

Production keeps them in Redis (shared by every serving replica and updated by the learning
worker). Without Redis they are counted from the votes table itself (``SqlPosteriors``), so the
embedded default learns reply choice too. All sit behind the same two calls. When the store is
unreachable, reads serve the last counts read (the uniform prior if none were) and the store is
not tried again for a short cool-down, instead of waiting on a dead socket for every request.

Both stores read every intent's posteriors in one go and keep that table for a couple of
seconds (:class:`PosteriorTable`): a request costs a dictionary lookup, not a query or a Redis
round trip on the event loop that shares the cores with the model (but for the first read
after start, which requests wait on). A stored vote shows once the table is reloaded: ``ttl_s``
later under steady traffic, at once after a quiet spell (a table older than ``max_stale_s`` is
reloaded before it answers).

Redis layout: hash ``thumbloop:posterior:<model>:<intent>`` (:func:`posterior_key`), fields
``<response_id>|a`` and ``<response_id>|b`` holding the accumulated 👍 and 👎 weights (the prior
Beta(1, 1) is implicit), and the set ``thumbloop:posterior-intents:<model>`` of the intents that
have one (:func:`posterior_index_key`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from sqlalchemy import Select, case, create_engine, func, select

from thumbloop.store.schema import InteractionRow, VoteRow

log = logging.getLogger(__name__)

Posterior = tuple[float, float]  # (alpha, beta) including the Beta(1, 1) prior
Table = dict[str, dict[str, Posterior]]  # intent -> response id -> posterior


class PosteriorStore(Protocol):
    async def get(self, intent: str) -> dict[str, Posterior]: ...

    async def update(
        self, intent: str, response_id: str, value: int, weight: float = 1.0
    ) -> None: ...


GENERATED = "gen"  # response ids of generated replies: "gen+<the variant that grounded it>"


def base_response_id(response_id: str) -> str | None:
    """The variant a reply was built from; clarifying and generated replies carry no variant of
    their own (a thumb on generated text says nothing about the written variant's wording)."""
    base = response_id.split("+", 1)[0]
    return None if "clarify" in base or base == GENERATED else base


def posterior_key(namespace: str, intent: str) -> str:
    return f"thumbloop:posterior:{namespace}:{intent}"


def posterior_index_key(namespace: str) -> str:
    """A set of the intents that have a posterior hash: what a reader reads, instead of
    scanning the whole database for the hashes."""
    return f"thumbloop:posterior-intents:{namespace}"


def posterior_field(response_id: str, value: int) -> str:
    """The hash field a 👍 (value > 0) or 👎 on this response adds to."""
    return f"{response_id}|{'a' if value > 0 else 'b'}"


def stage_vote(
    pipe: Any, namespace: str, intent: str, response_id: str, value: int, weight: float
) -> None:
    """Queue one vote's weight on a Redis pipeline (sync or asyncio: queuing is the same),
    with the intent in the index set readers go by."""
    pipe.hincrbyfloat(posterior_key(namespace, intent), posterior_field(response_id, value), weight)
    pipe.sadd(posterior_index_key(namespace), intent)


def _fold(fields: dict[str, float]) -> dict[str, Posterior]:
    out: dict[str, list[float]] = {}
    for key, val in fields.items():
        rid, _, part = key.rpartition("|")
        if part in ("a", "b") and rid:
            slot = out.setdefault(rid, [1.0, 1.0])
            # a count below zero (an increment lost in a Redis blip, then a withdrawal) would
            # make betavariate raise on every message of the intent: it counts as no votes
            slot[0 if part == "a" else 1] += max(0.0, float(val))
    return {k: (v[0], v[1]) for k, v in out.items()}


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


def vote_counts_query() -> Select[str, str, Any, Any]:
    """Per (intent, reply) the live 👍 and 👎 on record: what the posteriors are made of, read
    here on the embedded default and by the learning worker when it rebuilds Redis's."""
    up = func.sum(case((VoteRow.value > 0, 1), else_=0))
    down = func.sum(case((VoteRow.value < 0, 1), else_=0))
    return (
        select(InteractionRow.intent, InteractionRow.response_id, up, down)
        .join(VoteRow, VoteRow.interaction_id == InteractionRow.interaction_id)
        .group_by(InteractionRow.intent, InteractionRow.response_id)
    )


class InMemoryPosteriors:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, float]] = {}

    async def get(self, intent: str) -> dict[str, Posterior]:
        return _fold(self._data.get(intent, {}))

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        table = self._data.setdefault(intent, {})
        key = posterior_field(response_id, value)
        table[key] = table.get(key, 0.0) + weight


class PosteriorTable:
    """Every intent's posteriors from one ``load()``, cached. Within ``ttl_s`` the table is
    served as it is; after it the stale table is still served while one background load
    refreshes it (a few seconds' lag means nothing to Thompson sampling), up to ``max_stale_s``:
    a table older than that (after a quiet spell) is reloaded before it answers. Only such a
    request, or one for an intent with no counts at hand (nothing loaded yet, or changed since
    the last load by :meth:`forget`), waits for a load, and concurrent requests share that one.
    A failed load serves what was loaded last (uniform priors if nothing was) and the store is
    not tried again for ``cooldown_s``.

    Why one load for all intents: one query (or Redis round trip) per intent and request made
    the store's reads a large share of the server process's event-loop time under load, taken
    from the model's forward pass on the same cores.
    """

    def __init__(
        self,
        load: Callable[[], Awaitable[Table]],
        ttl_s: float = 2.0,
        cooldown_s: float = 5.0,
        max_stale_s: float = 30.0,
    ) -> None:
        self._load = load
        self._ttl, self._cooldown, self._max_stale = ttl_s, cooldown_s, max_stale_s
        self._table: tuple[float, Table] | None = None  # when its load began, what
        # forget() moves the generation on and notes it against its intent: a load that began
        # at an older generation read that intent's counts from before the change
        self._generation = 0
        self._forgotten: dict[str, int] = {}
        self._inflight: tuple[int, asyncio.Task[Table]] | None = None  # the newest load
        self._tasks: set[asyncio.Task[Table]] = set()  # every load still running
        self._down_until = 0.0
        self._closed = False
        self.failures = 0
        self.loads = 0

    async def _refresh(self, generation: int) -> Table:
        self.loads += 1
        started = time.monotonic()
        try:
            value = await self._load()
        except Exception as exc:  # the store is down, a table is missing: what we had, for now
            self.failures += 1
            self._down_until = time.monotonic() + self._cooldown
            log.warning(
                "posteriors unavailable (%s); %s",
                type(exc).__name__,
                "serving the last counts" if self._table else "using uniform priors",
            )
            return self._table[1] if self._table else {}
        else:
            if self._table is None or self._table[0] <= started:  # not overtaken by a newer load
                self._table = (started, value)
                for intent, forgotten_at in list(self._forgotten.items()):
                    if forgotten_at <= generation:
                        del self._forgotten[intent]
            return value
        finally:
            if self._inflight is not None and self._inflight[0] == generation:
                self._inflight = None

    def _start_refresh(self, at_least: int = 0) -> asyncio.Task[Table]:
        """The running load if it began at generation ``at_least`` or later, else a new one."""
        running = self._inflight
        if running is None or running[0] < at_least:
            task = asyncio.create_task(self._refresh(self._generation))
            running = self._inflight = (self._generation, task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return running[1]

    async def get(self, intent: str) -> dict[str, Posterior]:
        now = time.monotonic()
        table = self._table
        if self._closed or now < self._down_until:
            return table[1].get(intent, {}) if table else {}
        forgotten_at = self._forgotten.get(intent)
        if table is not None and forgotten_at is None:
            age = now - table[0]
            if age < self._ttl:
                return table[1].get(intent, {})
            if age < self._max_stale:
                self._start_refresh()  # stale but close: the refresh runs in the background
                return table[1].get(intent, {})
        fresh = await asyncio.shield(self._start_refresh(forgotten_at or 0))
        return fresh.get(intent, {})

    def forget(self, intent: str) -> None:
        """The intent's counts changed: its next request waits for a load that began after
        this call."""
        self._generation += 1
        self._forgotten[intent] = self._generation

    async def close(self) -> None:
        """Start no more loads and let running ones finish (they are short), so none works
        after the store's connections are gone and no waiting request is cancelled."""
        self._closed = True
        await asyncio.gather(*self._tasks, return_exceptions=True)


class RedisPosteriors:
    """Posteriors in Redis, kept there by the learning worker
    (``learning.worker.posterior_sync``) and shared by every serving replica. One load reads
    the index set of intents, then their hashes' ``HGETALL``s in one pipelined round trip.
    Hashes written before there was an index are found once by a ``SCAN`` (while the
    index does not exist) and added to it."""

    def __init__(
        self,
        url: str,
        namespace: str,
        ttl_s: float = 2.0,
        cooldown_s: float = 5.0,
        timeout_s: float = 0.25,
    ) -> None:
        # no retries: a failed load is tried again after the cool-down, and until a first load
        # has landed requests wait on it (each Redis call is bounded by ``timeout_s``)
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        self._ns = namespace
        self._prefix = posterior_key(namespace, "")
        self._index = posterior_index_key(namespace)
        self._scanned = False
        self.table = PosteriorTable(self._read_all, ttl_s, cooldown_s)
        self.scans = 0

    async def _backfill_index(self) -> None:
        """Add the hashes written before the index existed to it (a whole-database ``SCAN``,
        so at most once per process, and only while there is no index)."""
        if await self._redis.exists(self._index):
            self._scanned = True
            return
        self.scans += 1
        pattern = re.sub(r"([*?\[\]\\])", r"\\\1", self._prefix) + "*"  # the name taken literally
        found = [
            _text(k)[len(self._prefix) :]
            async for k in self._redis.scan_iter(match=pattern, count=1000, _type="HASH")
        ]
        if found:
            await self._redis.sadd(self._index, *found)
        self._scanned = True

    async def _read_all(self) -> Table:
        if not self._scanned:
            await self._backfill_index()
        intents = sorted(_text(m) for m in await self._redis.smembers(self._index))
        if not intents:
            return {}
        keys = [posterior_key(self._ns, intent) for intent in intents]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            hashes = await pipe.execute(raise_on_error=False)
        table: Table = {}
        for key, raw in zip(keys, hashes, strict=True):
            name = _text(key)
            try:
                if isinstance(raw, Exception):  # e.g. WRONGTYPE: not a hash
                    raise raw
                table[name[len(self._prefix) :]] = _fold(
                    {_text(k): float(v) for k, v in raw.items()}
                )
            except (ValueError, TypeError, RedisError) as exc:  # one bad hash: skip only it
                log.warning("posteriors: skipping %s (%s)", name, exc)
        return table

    async def get(self, intent: str) -> dict[str, Posterior]:
        return await self.table.get(intent)

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        """Add a vote's weight (the learning worker writes through ``PosteriorWriter``; this is
        for tools and tests); this process's next read of the intent sees it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            stage_vote(pipe, self._ns, intent, response_id, value, weight)
            await pipe.execute()
        self.table.forget(intent)

    async def close(self) -> None:
        await self.table.close()
        await self._redis.aclose()


class SqlPosteriors:
    """Posteriors counted from stored votes joined to their interactions (one vote per rater),
    every intent in one grouped query. Nothing writes here: a vote stored by the learning
    worker is the update, and shows once the table is reloaded."""

    def __init__(
        self,
        database_url: str,
        ttl_s: float = 2.0,
        cooldown_s: float = 5.0,
        max_stale_s: float = 30.0,
    ) -> None:
        self._engine = create_engine(database_url, pool_pre_ping=True)
        # self._count is looked up at each load (the tests slow it down)
        self.table = PosteriorTable(
            lambda: asyncio.to_thread(self._count), ttl_s, cooldown_s, max_stale_s
        )

    def _count(self) -> Table:
        query = vote_counts_query()
        fields: dict[str, dict[str, float]] = {}
        with self._engine.connect() as conn:
            for intent, response_id, n_up, n_down in conn.execute(query):
                rid = base_response_id(response_id)
                if rid is not None:
                    mine = fields.setdefault(intent, {})
                    mine[f"{rid}|a"] = mine.get(f"{rid}|a", 0.0) + float(n_up or 0)
                    mine[f"{rid}|b"] = mine.get(f"{rid}|b", 0.0) + float(n_down or 0)
        return {intent: _fold(f) for intent, f in fields.items()}

    async def get(self, intent: str) -> dict[str, Posterior]:
        return await self.table.get(intent)

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        """Votes are stored by the learning worker; forget the intent's counts so they show,
        including counts a load already under way read before this vote."""
        self.table.forget(intent)

    async def close(self) -> None:
        await self.table.close()
        self._engine.dispose()
