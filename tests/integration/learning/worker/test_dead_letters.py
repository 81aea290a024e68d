"""Dead letters: a vote that outlives its retries during a PostgreSQL outage is kept on the
broker and stored exactly once after the database is back, by ``thumbloop redrive`` or by
beat (a real worker process, Redis as broker, the machine's PostgreSQL)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from sqlalchemy import create_engine, select, text

from learning.worker.broker import broker_connection
from learning.worker.dead_letters import (
    absorb,
    publish,
    record_failure,
    resend,
    waiting_on_broker,
)
from tests.integration.learning.worker.conftest import NAMESPACE, interaction, user, vote
from tests.integration.servers import wait_until
from tests.integration.workers import count_rows, start_worker, stop_worker, worker_env
from tests.services import POSTGRES_ADMIN_URL, redis_url
from thumbloop.cli.main import cli
from thumbloop.queue import TaskQueue
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.privacy import forget_user
from thumbloop.store.schema import DroppedTaskRow, InteractionRow, VoteRow
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE, interaction_payload, vote_payload

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

BROKER = redis_url(15)


@pytest.fixture
def broker() -> Iterator[str]:
    from tests.integration.servers import flushed_redis

    with flushed_redis(BROKER) as url:
        yield url


def _accepting(pg_url: str, allow: bool) -> None:
    """Open or close the database to every client, as an outage would (sessions are cut)."""
    name = pg_url.rsplit("/", 1)[1]
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allow).lower()}'))
        if not allow:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
    admin.dispose()


@contextmanager
def _outage(pg_url: str) -> Iterator[None]:
    _accepting(pg_url, False)
    try:
        yield
    finally:
        _accepting(pg_url, True)


def _on_broker(url: str) -> int:
    with broker_connection(Settings(broker_url=url)) as conn:
        return waiting_on_broker(conn)


def _vote_lost_in_an_outage(pg_url: str, broker: str, env: dict[str, str]) -> dict[str, Any]:
    """Store an interaction, then send a vote while the database refuses connections; returns
    once the vote, out of retries, waits on the broker as a dead letter."""
    queue = TaskQueue(broker)
    item = interaction("alice", "where is my card")
    queue.send(RECORD_INTERACTION, interaction_payload(item))
    wait_until(lambda: count_rows(pg_url, InteractionRow) == 1, 60, what="the interaction")
    payload = vote_payload(vote(item, "bob", 1))
    with _outage(pg_url):
        queue.send(RECORD_VOTE, payload)
        wait_until(lambda: _on_broker(broker) == 1, 90, what="the vote as a dead letter")
    queue.close()
    return payload


def _stored_once(pg_url: str, broker: str) -> None:
    time.sleep(1.5)  # time for a second copy to land, if one had been sent
    assert count_rows(pg_url, VoteRow) == 1
    posterior = redis.Redis.from_url(broker, decode_responses=True).hgetall(
        f"thumbloop:posterior:{NAMESPACE}:card_arrival"
    )
    assert {k: float(v) for k, v in posterior.items()} == {"card_arrival/1|a": 1.0}
    engine = make_engine(pg_url)
    with session_scope(engine) as s:
        row = s.scalars(select(DroppedTaskRow)).one()
        assert (row.kind, row.task, row.payload) == ("failed", RECORD_VOTE, "")
        assert row.redriven_at is not None and "OperationalError" in row.reason
    engine.dispose()


def test_redrive_stores_a_vote_that_outlived_its_retries_exactly_once(
    tmp_path: Path, pg_url: str, broker: str
) -> None:
    env = worker_env(
        tmp_path,
        pg_url,
        broker,
        broker,
        THUMBLOOP_TASK_MAX_RETRIES="2",
        THUMBLOOP_MODEL_NAME=NAMESPACE,
    )
    proc = start_worker(env)
    try:
        _vote_lost_in_an_outage(pg_url, broker, env)
        assert count_rows(pg_url, VoteRow) == 0
        runner = CliRunner()
        sent = runner.invoke(cli, ["redrive"], env=env)
        assert sent.exit_code == 0, sent.output
        assert "re-sent 1 dead letters (1 taken from the broker first" in sent.output
        wait_until(lambda: count_rows(pg_url, VoteRow) == 1, 60, what="the redriven vote")
        again = runner.invoke(cli, ["redrive"], env=env)
        assert again.exit_code == 0 and "re-sent 0 dead letters" in again.output, again.output
        _stored_once(pg_url, broker)
    finally:
        stop_worker(proc)


def test_beat_redrives_dead_letters_by_itself(tmp_path: Path, pg_url: str, broker: str) -> None:
    env = worker_env(
        tmp_path,
        pg_url,
        broker,
        broker,
        THUMBLOOP_TASK_MAX_RETRIES="1",
        THUMBLOOP_REDRIVE_INTERVAL_S="1",
        THUMBLOOP_RETRAIN_CHECK_INTERVAL_S="3600",
        THUMBLOOP_MODEL_NAME=NAMESPACE,
    )
    proc = start_worker(env, beat=True)
    try:
        _vote_lost_in_an_outage(pg_url, broker, env)  # beat's redrives skip while it is down
        wait_until(lambda: count_rows(pg_url, VoteRow) == 1, 60, what="beat's redrive")
        _stored_once(pg_url, broker)
    finally:
        stop_worker(proc)


@pytest.fixture(params=["redis", "embedded"])
def any_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "embedded":  # kombu's SQLAlchemy transport on a SQLite file
        yield f"sqla+sqlite:///{tmp_path}/broker.db"
        return
    yield request.getfixturevalue("broker")


def test_dead_letters_are_one_row_per_task_and_stop_after_too_many_attempts(
    pg_url: str, any_broker: str
) -> None:
    broker = any_broker
    engine = make_engine(pg_url)
    item = interaction("alice", "where is my card")
    payload = interaction_payload(item)
    forgotten = vote_payload(vote(item, "bob", 1, datetime.now(UTC) - timedelta(minutes=1)))
    with session_scope(engine) as s:
        forget_user(s, user("bob"))
    sent: list[tuple[str, dict[str, Any]]] = []
    with broker_connection(Settings(broker_url=broker)) as conn:
        for _ in range(2):  # the same dead letter handed over twice
            publish(conn, RECORD_INTERACTION, payload, "OperationalError: down")
        publish(conn, RECORD_VOTE, forgotten, "OperationalError: down")
        assert absorb(conn, engine) == (2, 1)  # bob's vote: forgotten since, discarded
        assert waiting_on_broker(conn) == 0
    assert resend(engine, lambda name, kw: sent.append((name, kw)), max_attempts=5) == (1, 0)
    assert sent == [(RECORD_INTERACTION, payload)]
    assert resend(engine, lambda name, kw: sent.append((name, kw)), max_attempts=5) == (0, 0)
    with session_scope(engine) as s:
        row = s.scalars(select(DroppedTaskRow)).one()
        assert (row.attempts, row.payload) == (2, "")  # blanked once sent: no message kept
        record_failure(s, RECORD_INTERACTION, payload, "IntegrityError: a bug")  # fails again
    with session_scope(engine) as s:
        row = s.scalars(select(DroppedTaskRow)).one()
        assert (row.attempts, row.redriven_at, json.loads(row.payload)) == (3, None, payload)
    assert resend(engine, lambda name, kw: sent.append((name, kw)), max_attempts=2) == (0, 1)
    assert resend(engine, lambda name, kw: sent.append((name, kw)), max_attempts=None) == (1, 0)
    assert len(sent) == 2
    engine.dispose()
