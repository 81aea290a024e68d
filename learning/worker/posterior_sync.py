"""Vote -> reply posterior updates in Redis (the layout serving.replies.posteriors reads)."""

from __future__ import annotations

import logging

import redis

from serving.replies.posteriors import base_response_id, stage_vote

log = logging.getLogger(__name__)


class PosteriorWriter:
    def __init__(self, redis_url: str | None, namespace: str) -> None:
        self.namespace = namespace
        self._redis = None
        if redis_url:
            self._redis = redis.Redis.from_url(
                redis_url, socket_timeout=2, socket_connect_timeout=2
            )

    def apply(self, intent: str, response_id: str, old: int | None, new: int | None) -> bool:
        """Move one rater's vote on a reply from ``old`` to ``new`` (None: no vote)."""
        rid = base_response_id(response_id)
        if self._redis is None or rid is None or old == new:
            return False
        pipe = self._redis.pipeline(transaction=True)
        if old is not None:
            stage_vote(pipe, self.namespace, intent, rid, old, -1.0)
        if new is not None:
            stage_vote(pipe, self.namespace, intent, rid, new, 1.0)
        pipe.execute()
        return True
