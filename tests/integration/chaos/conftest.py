"""The chaos scenarios' short versions: each builds its own stack (a private PostgreSQL and
redis-server on free ports for the production backend, SQLite files for the embedded one), so a
fault never reaches the machine's shared services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.chaos_servers import (
    PrivatePostgres,
    PrivateRedis,
    private_postgres,
    private_redis,
    private_vhost,
)
from bench.chaos_stack import Backend, embedded, production

Production = tuple[Backend, PrivatePostgres, PrivateRedis]


@pytest.fixture
def production_stack(tmp_path: Path) -> Iterator[Production]:
    with private_postgres() as pg, private_redis() as rd:
        yield production(tmp_path / "home", pg.url, rd.url), pg, rd


@pytest.fixture
def rabbitmq_stack(tmp_path: Path) -> Iterator[Production]:
    """As ``production_stack`` with RabbitMQ as the broker (a throwaway virtual host on the
    machine's server)."""
    with private_postgres() as pg, private_redis() as rd, private_vhost() as mq:
        yield production(tmp_path / "home", pg.url, rd.url, mq), pg, rd


@pytest.fixture
def embedded_stack(tmp_path: Path) -> Backend:
    return embedded(tmp_path / "home")


def explain(result: object) -> str:
    """The whole result in an assertion's message: a failed chaos run says what it measured."""
    return repr(result)
