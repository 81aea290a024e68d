"""Per-(intent, response) Beta posteriors of "this reply earns a 👍".

Production keeps them in Redis (shared by every serving replica and updated by the learning
worker). Without Redis they are counted from the votes table itself (``SqlPosteriors``), so the
embedded default learns reply choice too. All sit behind the same two calls. When the store is
unreachable, reads fall back to the uniform prior for a short cool-down instead of waiting on a
dead socket for every request.

Redis layout: hash ``thumbloop:posterior:<model>:<intent>``, fields ``<response_id>|a`` and
``<response_id>|b`` holding the accumulated 👍 and 👎 weights (the prior Beta(1, 1) is implicit).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

log = logging.getLogger(__name__)

Posterior = tuple[float, float]  # (alpha, beta) including the Beta(1, 1) prior


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


def _fold(fields: dict[str, float]) -> dict[str, Posterior]:
    out: dict[str, list[float]] = {}
    for key, val in fields.items():
        rid, _, part = key.rpartition("|")
        if part in ("a", "b") and rid:
            slot = out.setdefault(rid, [1.0, 1.0])
            slot[0 if part == "a" else 1] += float(val)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key


class InMemoryPosteriors:
    def __init__(self) -> None:
        self._data: dict[str, dict[str, float]] = {}

    async def get(self, intent: str) -> dict[str, Posterior]:
        return _fold(self._data.get(intent, {}))

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        table = self._data.setdefault(intent, {})
        key = f"{response_id}|{'a' if value > 0 else 'b'}"
        table[key] = table.get(key, 0.0) + weight


class RedisPosteriors:
    def __init__(self, url: str, namespace: str, cooldown_s: float = 5.0, timeout_s: float = 0.05):
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self._ns = namespace
        self._cooldown = cooldown_s
        self._down_until = 0.0
        self.failures = 0

    def _key(self, intent: str) -> str:
        return f"thumbloop:posterior:{self._ns}:{intent}"

    async def get(self, intent: str) -> dict[str, Posterior]:
        if time.monotonic() < self._down_until:
            return {}
        try:
            raw = await self._redis.hgetall(self._key(intent))
        except Exception as exc:  # any Redis trouble means: uniform prior for now
            self.failures += 1
            self._down_until = time.monotonic() + self._cooldown
            log.warning("posteriors unavailable (%s); using uniform priors", type(exc).__name__)
            return {}
        return _fold({_text(k): float(v) for k, v in raw.items()})

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        field = f"{response_id}|{'a' if value > 0 else 'b'}"
        await self._redis.hincrbyfloat(self._key(intent), field, weight)

    async def close(self) -> None:
        await self._redis.aclose()


class SqlPosteriors:
    """Posteriors counted from stored votes joined to their interactions (one vote per rater).

    Nothing writes here: a vote stored by the learning worker is the update. One query counts
    every intent at once, and its table is cached: within ``ttl_s`` it is served as it is;
    after it the stale table is still served while one background query refreshes it (a few
    seconds' lag means nothing to Thompson sampling). Only a request for an intent with no
    counts at hand (nothing counted yet, or forgotten by ``update``) waits for the query, and
    concurrent requests share that one. Before, each intent had its own query, so at 300 req/s
    over ~80 intents about 40 queries a second ran on the server process's cores, about a
    quarter of its event loop's time (py-spy), taken from the model's forward pass.
    """

    def __init__(self, database_url: str, ttl_s: float = 2.0, cooldown_s: float = 5.0) -> None:
        from sqlalchemy import create_engine

        self._engine = create_engine(database_url, pool_pre_ping=True)
        self._ttl, self._cooldown = ttl_s, cooldown_s
        self._table: tuple[float, dict[str, dict[str, Posterior]]] | None = None  # when, counts
        # update() moves the generation on and forgets its intent, so a refresh that began
        # before a vote neither caches nor answers the requests that come after it
        self._generation = 0
        self._forgotten: set[str] = set()
        self._inflight: tuple[int, asyncio.Task[dict[str, dict[str, Posterior]]]] | None = None
        self._tasks: set[asyncio.Task[dict[str, dict[str, Posterior]]]] = set()  # still running
        self._down_until = 0.0
        self.failures = 0
        self.queries = 0

    def _count(self) -> dict[str, dict[str, Posterior]]:
        """Every intent's posteriors, from one grouped query."""
        from sqlalchemy import case, func, select

        from thumbloop.store.schema import InteractionRow, VoteRow

        up = func.sum(case((VoteRow.value > 0, 1), else_=0))
        down = func.sum(case((VoteRow.value < 0, 1), else_=0))
        query = (
            select(InteractionRow.intent, InteractionRow.response_id, up, down)
            .join(VoteRow, VoteRow.interaction_id == InteractionRow.interaction_id)
            .group_by(InteractionRow.intent, InteractionRow.response_id)
        )
        fields: dict[str, dict[str, float]] = {}
        with self._engine.connect() as conn:
            for intent, response_id, n_up, n_down in conn.execute(query):
                rid = base_response_id(response_id)
                if rid is not None:
                    mine = fields.setdefault(intent, {})
                    mine[f"{rid}|a"] = mine.get(f"{rid}|a", 0.0) + float(n_up or 0)
                    mine[f"{rid}|b"] = mine.get(f"{rid}|b", 0.0) + float(n_down or 0)
        return {intent: _fold(f) for intent, f in fields.items()}

    async def _refresh(self, generation: int) -> dict[str, dict[str, Posterior]]:
        self.queries += 1
        started = time.monotonic()
        try:
            value = await asyncio.to_thread(self._count)
        except Exception as exc:  # a missing table or a locked file: what we had, for now
            self.failures += 1
            self._down_until = time.monotonic() + self._cooldown
            log.warning(
                "posteriors unavailable (%s); %s",
                type(exc).__name__,
                "serving the last counts" if self._table else "using uniform priors",
            )
            return self._table[1] if self._table else {}
        else:
            if self._generation == generation:
                self._table = (started, value)
                self._forgotten.clear()
            return value
        finally:
            if self._inflight is not None and self._inflight[0] == generation:
                self._inflight = None

    def _start_refresh(self) -> asyncio.Task[dict[str, dict[str, Posterior]]]:
        running = self._inflight
        if running is None or running[0] != self._generation:
            task = asyncio.create_task(self._refresh(self._generation))
            running = self._inflight = (self._generation, task)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return running[1]

    async def get(self, intent: str) -> dict[str, Posterior]:
        now = time.monotonic()
        table = self._table
        known = table is not None and intent not in self._forgotten
        if table is not None and known:
            if now - table[0] < self._ttl or now < self._down_until:
                return table[1].get(intent, {})
            self._start_refresh()  # stale but close: the refresh runs in the background
            return table[1].get(intent, {})
        if now < self._down_until:
            return {}
        counts = await asyncio.shield(self._start_refresh())
        return counts.get(intent, {})

    async def update(self, intent: str, response_id: str, value: int, weight: float = 1.0) -> None:
        """Votes are stored by the learning worker; forget the intent's cached counts so they
        show, including counts a refresh already under way read before this vote."""
        self._forgotten.add(intent)
        self._generation += 1

    async def close(self) -> None:
        # let running queries finish (they are short) so none opens a connection after dispose
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._engine.dispose()
