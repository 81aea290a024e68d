"""Per-(intent, response) Beta posteriors of "this reply earns a 👍".

Production keeps them in Redis (shared by every serving replica and updated by the learning
worker); the embedded default keeps them in process. Both sit behind the same two calls.
When Redis is unreachable, reads fall back to the uniform prior for a short cool-down instead
of waiting on a dead socket for every request.

Redis layout: hash ``thumbloop:posterior:<model>:<intent>``, fields ``<response_id>|a`` and
``<response_id>|b`` holding the accumulated 👍 and 👎 weights (the prior Beta(1, 1) is implicit).
"""

from __future__ import annotations

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
