"""The Celery app: broker and backend from settings, explicit task names, late acks.

Embedded default (no server): kombu's SQLAlchemy transport on a SQLite file as the broker and a
SQLite result backend, both under THUMBLOOP_HOME; its messages are leased, so a killed worker's
tasks come back (``embedded_broker.py``), and the blocking pool Celery runs on it gets locks that
a killed pool child releases (``pool_locks.py``). Production: Redis
(``THUMBLOOP_BROKER_URL=redis://...``) or RabbitMQ (``amqp://...``, with a Redis or database
result backend), which has no message-loss window when a worker is killed. Training tasks go
to their own ``training`` queue so GPU hosts can consume only those
(``thumbloop worker --queues training``).
"""

from __future__ import annotations

import logging

from celery import Celery

from learning.worker.broker import transport_options
from learning.worker.embedded_broker import install
from learning.worker.maintenance import beat_schedule
from learning.worker.pool_locks import install as install_pool_locks
from learning.worker.tasks import BACKOFF_MAX_S, register_tasks
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, ROUTES

log = logging.getLogger(__name__)


def create_celery(settings: Settings) -> Celery:
    settings.ensure_home()
    warn_short_visibility(settings)
    if settings.effective_broker_url.startswith("sqla+"):
        install()
        install_pool_locks()
    app = Celery("thumbloop", broker=settings.effective_broker_url, set_as_current=True)
    app.conf.update(
        result_backend=settings.effective_result_backend,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # a task is acknowledged after it ran: a killed worker's task is redelivered
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1
        if not settings.effective_broker_url.startswith("sqla+")
        else 8,
        task_default_queue=DEFAULT_QUEUE,
        task_routes=ROUTES,
        broker_transport_options=transport_options(settings),
        broker_connection_retry_on_startup=True,
        result_expires=86_400,
        worker_hijack_root_logger=False,
        beat_schedule=beat_schedule(settings),
    )
    register_tasks(app, settings)
    return app


def warn_short_visibility(settings: Settings) -> bool:
    """Redis hands a task it has not seen acknowledged within the visibility timeout to another
    worker, and a task waiting out a retry (up to ``BACKOFF_MAX_S``) is not acknowledged: with a
    shorter timeout every wait makes a copy, and each copy that runs out of retries during an
    outage counts one more attempt on its dead letter, until redrive gives it up."""
    short = settings.effective_broker_url.startswith(("redis", "rediss", "sentinel")) and (
        settings.learning.visibility_timeout_s < 2 * BACKOFF_MAX_S
    )
    if short:
        log.warning(
            "THUMBLOOP_VISIBILITY_TIMEOUT_S=%s is under %s s, twice the longest retry wait: "
            "waiting retries will be delivered again as copies",
            settings.learning.visibility_timeout_s,
            2 * BACKOFF_MAX_S,
        )
    return short
