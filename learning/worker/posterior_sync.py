"""Votes -> reply posteriors in Redis (the layout serving.replies.posteriors reads).

Each stored vote moves its reply's counts after the SQL commit (:meth:`PosteriorWriter.apply`).
That write can be lost (Redis unreachable for a moment: the vote is stored and the error only
logged), so counts can drift from the votes table, which is the source of truth. Two things
keep that harmless: a write never takes a count below zero (a flip or a withdrawal of a vote
whose increment was lost would otherwise leave -1, and serving's ``betavariate`` raises on a
negative parameter), and :func:`reconcile` rebuilds the hashes from the votes table (beat runs
it every ``THUMBLOOP_RECONCILE_INTERVAL_S``, ``/forget`` for the intents it touched, and
``thumbloop reconcile`` on demand). A vote applied while a reconcile runs can be missed or
counted twice until the next one: the two are not one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

import redis
from sqlalchemy.orm import Session

from serving.replies.posteriors import (
    base_response_id,
    posterior_field,
    posterior_index_key,
    posterior_key,
    vote_counts_query,
)
from thumbloop.store.schema import InteractionRow

log = logging.getLogger(__name__)

Counts = dict[str, dict[str, float]]  # intent -> hash field ("<response>|a" / "|b") -> weight

# KEYS: the intent's hash, the index set; ARGV: the intent, then (field, delta) pairs. One
# script, so a flip's decrement and increment land together and the clamp reads what it writes.
_MOVE = """
for i = 2, #ARGV, 2 do
  local field, delta = ARGV[i], tonumber(ARGV[i + 1])
  local now = tonumber(redis.call('HGET', KEYS[1], field) or '0') or 0
  if now + delta < 0 then
    redis.call('HSET', KEYS[1], field, '0')
  else
    redis.call('HINCRBYFLOAT', KEYS[1], field, ARGV[i + 1])
  end
end
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""


class PosteriorWriter:
    def __init__(self, redis_url: str | None, namespace: str) -> None:
        self.namespace = namespace
        self._redis: redis.Redis | None = None
        if redis_url:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=2, socket_connect_timeout=2
            )
            self._move = self._redis.register_script(_MOVE)

    @property
    def enabled(self) -> bool:
        return self._redis is not None

    def apply(self, intent: str, response_id: str, old: int | None, new: int | None) -> bool:
        """Move one rater's vote on a reply from ``old`` to ``new`` (None: no vote); no count
        goes below zero."""
        rid = base_response_id(response_id)
        if self._redis is None or rid is None or old == new:
            return False
        args: list[str | float] = [intent]
        if old is not None:
            args += [posterior_field(rid, old), -1.0]
        if new is not None:
            args += [posterior_field(rid, new), 1.0]
        self._move(
            keys=[posterior_key(self.namespace, intent), posterior_index_key(self.namespace)],
            args=args,
        )
        return True

    def replace(self, counts: Counts, intents: Collection[str] | None = None) -> int:
        """Make the hashes of ``intents`` (None: every intent in Redis or in ``counts``) equal
        ``counts``, in one transaction; returns the number of intents written."""
        if self._redis is None:
            return 0
        index = posterior_index_key(self.namespace)
        if intents is None:
            known = {m.decode() if isinstance(m, bytes) else m for m in self._redis.smembers(index)}
            intents = known | set(counts)
        pipe = self._redis.pipeline(transaction=True)
        for intent in sorted(intents):
            key = posterior_key(self.namespace, intent)
            pipe.delete(key)
            fields = counts.get(intent)
            if fields:
                pipe.hset(key, items=[x for pair in fields.items() for x in pair])
                pipe.sadd(index, intent)
            else:
                pipe.srem(index, intent)
        pipe.execute()
        return len(intents)

    def read(self, intent: str) -> dict[str, float]:
        """The intent's hash as numbers (tests and the ``reconcile`` command's report)."""
        if self._redis is None:
            return {}
        raw = self._redis.hgetall(posterior_key(self.namespace, intent))
        return {
            (k.decode() if isinstance(k, bytes) else k): float(v)
            for k, v in raw.items()  # type: ignore[union-attr]
        }

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()


def sql_counts(session: Session, intents: Collection[str] | None = None) -> Counts:
    """The posterior weights the votes table implies: per (intent, template variant) the live
    👍 and 👎 joined to their interactions, as serving's ``SqlPosteriors`` counts them."""
    query = vote_counts_query()
    if intents is not None:
        query = query.where(InteractionRow.intent.in_(list(intents)))
    counts: Counts = {}
    for intent, response_id, n_up, n_down in session.execute(query):
        rid = base_response_id(response_id)
        if rid is None:
            continue
        fields = counts.setdefault(intent, {})
        for value, n in ((1, n_up), (-1, n_down)):
            name = posterior_field(rid, value)
            fields[name] = fields.get(name, 0.0) + float(n or 0)
    return counts


def reconcile(
    session: Session, writer: PosteriorWriter, intents: Collection[str] | None = None
) -> int:
    """Rebuild the Redis posteriors of ``intents`` (None: all) from the votes table."""
    if not writer.enabled:
        return 0
    return writer.replace(sql_counts(session, intents), intents)
