"""Single-flight for retrains: a Redis lock with expiry, or a file lock on the embedded default."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator

import redis

from thumbloop.settings import Settings


@contextlib.contextmanager
def retrain_lock(settings: Settings) -> Iterator[bool]:
    """Yields True when this process holds the lock, False when another retrain is running."""
    if settings.redis_url:
        client = redis.Redis.from_url(settings.redis_url)
        lock = client.lock(
            f"thumbloop:lock:retrain:{settings.model_name}",
            timeout=settings.learning.retrain_lock_ttl_s,
        )
        got = bool(lock.acquire(blocking=False))
        try:
            yield got
        finally:
            if got:
                with contextlib.suppress(Exception):  # expired meanwhile: nothing to release
                    lock.release()
            client.close()
        return
    path = settings.ensure_home() / f"retrain-{settings.model_name}.lock"
    with path.open("w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
