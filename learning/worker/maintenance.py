"""Beat's periodic tasks besides retrains: rebuild the Redis posteriors from the votes table,
send dead letters again, redact messages past their retention, and group the review inbox's new
messages by meaning (``learning/review/similar.py``).

They run on the default queue (any recording worker takes them), are never retried (the next
run is the retry) and skip a run while the database is unreachable. Their names are the
worker's own (only beat sends them), so they are not part of ``thumbloop.task_names``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from celery import Celery, Task
from sqlalchemy import Engine

from learning.review.similar import INTERVAL_S as GROUP_INTERVAL_S
from learning.review.similar import group_similar
from learning.worker.broker import broker_connection
from learning.worker.dead_letters import is_transient, redrive
from learning.worker.posterior_sync import PosteriorWriter, reconcile
from thumbloop.settings import Settings
from thumbloop.store.db import session_scope
from thumbloop.store.privacy import redact_older_than
from thumbloop.task_names import DEFAULT_QUEUE, RETRAIN_IF_DUE, TRAINING_QUEUE

log = logging.getLogger(__name__)

RECONCILE_POSTERIORS = "learning.reconcile_posteriors"
REDRIVE_DEAD_LETTERS = "learning.redrive_dead_letters"
APPLY_RETENTION = "learning.apply_retention"
RETENTION_INTERVAL_S = 86_400.0  # daily: retention is counted in days
GROUP_REVIEW_MESSAGES = "learning.group_review_messages"


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    def every(task: str, seconds: float, queue: str = DEFAULT_QUEUE) -> dict[str, Any]:
        # a run that waited longer than its period is superseded by the next one
        return {"task": task, "schedule": seconds, "options": {"queue": queue, "expires": seconds}}

    learning = settings.learning
    return {
        "retrain-if-due": every(RETRAIN_IF_DUE, learning.retrain_check_interval_s, TRAINING_QUEUE),
        "reconcile-posteriors": every(RECONCILE_POSTERIORS, learning.reconcile_interval_s),
        "redrive-dead-letters": every(REDRIVE_DEAD_LETTERS, learning.redrive_interval_s),
        "apply-retention": every(APPLY_RETENTION, RETENTION_INTERVAL_S),
        "group-review-messages": every(GROUP_REVIEW_MESSAGES, GROUP_INTERVAL_S),
    }


def apply_retention(
    engine: Engine, days: int | None, now: datetime | None = None
) -> dict[str, Any]:
    """Redact the messages of interactions older than ``days`` (None or 0: keep forever)."""
    if not days:
        return {"skipped": "THUMBLOOP_RETENTION_DAYS is not set: messages are kept"}
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    with session_scope(engine) as s:
        redacted, dropped = redact_older_than(s, cutoff)
    if redacted or dropped:
        log.info("retention: %d interactions redacted, %d dropped tasks deleted", redacted, dropped)
    return {"redacted": redacted, "dropped_tasks_deleted": dropped, "cutoff": cutoff.isoformat()}


def register_maintenance(
    app: Celery, settings: Settings, engine: Engine, posteriors: PosteriorWriter
) -> None:
    def unless_database_down(task: str, run: Any) -> Any:
        try:
            return run()
        except Exception as exc:
            if not is_transient(exc):
                raise
            # the next run is the retry
            log.warning("%s skipped: database unreachable (%s)", task, type(exc).__name__)
            return {"skipped": "database unreachable"}

    @app.task(name=RECONCILE_POSTERIORS, bind=True, shared=False)
    def reconcile_posteriors(self: Task) -> dict[str, Any]:
        if not posteriors.enabled:
            return {"skipped": "no Redis: serving counts posteriors from the votes table"}

        def run() -> dict[str, Any]:
            with session_scope(engine) as s:
                return {"intents": reconcile(s, posteriors)}

        return dict(unless_database_down(RECONCILE_POSTERIORS, run))

    @app.task(name=REDRIVE_DEAD_LETTERS, bind=True, shared=False)
    def redrive_dead_letters(self: Task) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            with broker_connection(settings) as conn:
                done = redrive(
                    conn,
                    engine,
                    lambda name, kwargs: app.send_task(name, kwargs=kwargs),
                    settings.learning.redrive_max_attempts,
                )
            return asdict(done)

        return dict(unless_database_down(REDRIVE_DEAD_LETTERS, run))

    @app.task(name=APPLY_RETENTION, bind=True, shared=False)
    def apply_retention_task(self: Task) -> dict[str, Any]:
        days = settings.learning.retention_days
        return dict(unless_database_down(APPLY_RETENTION, lambda: apply_retention(engine, days)))

    encoder: list[Any] = []  # loaded at the first message to group, once per process

    def embed(texts: Sequence[str]) -> np.ndarray:
        if not encoder:
            from thumbloop.model.device import resolve_device
            from thumbloop.model.sentences import SentenceEncoder

            encoder.append(SentenceEncoder(device=resolve_device(settings.compute.device)))
        return np.asarray(encoder[0].embed(texts))

    @app.task(name=GROUP_REVIEW_MESSAGES, bind=True, shared=False)
    def group_review_messages(self: Task) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return asdict(group_similar(engine, embed))

        return dict(unless_database_down(GROUP_REVIEW_MESSAGES, run))
