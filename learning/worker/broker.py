"""The broker as the worker and the operator commands reach it: transport options and a plain
kombu connection (for the dead-letter queue, which is not a Celery queue)."""

from __future__ import annotations

from typing import Any

from kombu import Connection

from learning.worker.embedded_broker import install
from thumbloop.settings import Settings


def transport_options(settings: Settings) -> dict[str, int]:
    # kombu's SQLAlchemy transport hands its options to create_engine; it has no visibility
    # timeout (unacknowledged messages come back on a clean shutdown, not after a hard kill).
    # RabbitMQ takes a dead consumer's unacknowledged messages back by itself.
    if not settings.effective_broker_url.startswith(("redis", "rediss", "sentinel")):
        return {}
    timeout = settings.learning.visibility_timeout_s
    # Redis looks for expired unacked messages only every interval x throttle seconds (kombu's
    # default 10 x 10 = 100 s); scan every quarter timeout (1-60 s) so a killed worker's task
    # comes back soon after its visibility timeout, not minutes later. A worker killed during a
    # scan leaves the scan's mutex behind; kombu's 5 minutes would stall redelivery that long.
    return {
        "visibility_timeout": timeout,
        "unacked_restore_interval": min(60, max(1, timeout // 4)),
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": min(300, max(10, timeout)),
    }


def broker_connection(settings: Settings) -> Connection:
    """A connection that gives up after a couple of tries: its callers (a dead letter being
    put away, a redrive) have somewhere else to fall back to, and must not hang on a dead
    broker the way kombu's default of retrying forever would."""
    url = settings.effective_broker_url
    if url.startswith("sqla+"):
        install()
    options: dict[str, Any] = transport_options(settings)
    if not url.startswith("sqla+"):  # the SQLAlchemy transport hands them to create_engine
        options |= {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
    return Connection(url, transport_options=options, connect_timeout=5)
