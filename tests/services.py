"""Where the integration tests find the machine's real services.

Each URL can be pointed elsewhere by an environment variable; the tests that need a service
carry its marker (``postgres``, ``redis``, ``rabbitmq``), so ``pytest -m "not rabbitmq"`` runs
the rest on a machine without it.
"""

from __future__ import annotations

import os

POSTGRES_ADMIN_URL = os.environ.get(
    "THUMBLOOP_TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
REDIS_SERVER_URL = os.environ.get("THUMBLOOP_TEST_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")
RABBITMQ_URL = os.environ.get("THUMBLOOP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


def redis_url(db: int) -> str:
    """One numbered database of the test Redis server (each test module keeps its own)."""
    return f"{REDIS_SERVER_URL}/{db}"


def postgres_url(database: str) -> str:
    """Another database on the test PostgreSQL server (same user, host and port)."""
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    return f"{base}/{database}"


def redis_host_port() -> tuple[str, int]:
    from urllib.parse import urlparse

    parsed = urlparse(REDIS_SERVER_URL)
    return parsed.hostname or "127.0.0.1", parsed.port or 6379
