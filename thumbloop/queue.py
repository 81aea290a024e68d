"""Sending tasks without importing ``learning``: a producer-only Celery client.

The bots call :meth:`TaskQueue.send` with a name from ``thumbloop.task_names``; the broker is the
one in settings (Redis in production, SQLite via kombu's SQLAlchemy transport by default).
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from thumbloop.task_names import DEFAULT_QUEUE, ROUTES

log = logging.getLogger(__name__)


class TaskSender(Protocol):
    def send(self, name: str, kwargs: dict[str, Any]) -> str: ...


class TaskQueue:
    """Celery producer; ``send`` raises on broker trouble so callers can retry later."""

    def __init__(self, broker_url: str, *, connect_timeout_s: float = 2.0) -> None:
        from celery import Celery

        self._app = Celery("thumbloop-producer", broker=broker_url, set_as_current=False)
        self._app.conf.update(
            broker_connection_retry_on_startup=False,
            broker_connection_timeout=connect_timeout_s,
            task_serializer="json",
            accept_content=["json"],
            task_default_queue=DEFAULT_QUEUE,
            task_routes=ROUTES,
            broker_transport_options={"max_retries": 1, "interval_start": 0, "interval_step": 0.2},
        )

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        result = self._app.send_task(name, kwargs=kwargs, retry=False)
        return str(result.id)

    def close(self) -> None:
        self._app.close()
