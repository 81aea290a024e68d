"""The broker as compose runs it, for real: a private RabbitMQ node (never the machine's) booted
with docker/rabbitmq/thumbloop.conf and the definitions docker/make_secrets.py writes, then the
services' own code on their own users. A bot sends learning tasks, compose's worker, beat and
trainer commands run on theirs (with their Redis users) and answer the health check's ping; and
every user is refused (ACCESS_REFUSED) the queues and exchanges that are not its part."""

from __future__ import annotations

import asyncio
import functools
import glob
import os
import pwd
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from amqp import Message
from amqp.exceptions import AccessRefused, NotFound
from celery import Celery
from kombu import Connection, Exchange, Queue

from learning.worker.dead_letters import DEAD_LETTER_QUEUE
from serving.replies.posteriors import RedisPosteriors
from tests.integration.docker.conftest import DOCKER, ROOT, local_redis
from tests.integration.learning.worker.conftest import interaction, vote
from tests.integration.servers import free_port, fresh_postgres_db
from tests.integration.workers import stop_worker
from thumbloop.queue import TaskQueue
from thumbloop.task_names import (
    DEFAULT_QUEUE,
    RECORD_INTERACTION,
    RECORD_VOTE,
    RETRAIN_IF_DUE,
    TRAINING_QUEUE,
    interaction_payload,
    vote_payload,
)

pytestmark = [pytest.mark.rabbitmq]

SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(
    (DOCKER / "compose.yaml").read_text(encoding="utf-8")
)["services"]
CONTROL = "celery.pidbox"  # Celery's broadcast of remote control commands (shutdown, revoke)

Url = Callable[[str], str]


def _server_binary() -> str:
    """The node itself: /usr/sbin/rabbitmq-server is a wrapper that drops the environment."""
    found = glob.glob("/usr/lib/rabbitmq/bin/rabbitmq-server") or glob.glob(
        "/usr/lib/rabbitmq/lib/rabbitmq_server-*/sbin/rabbitmq-server"
    )
    if not found:
        pytest.fail("no RabbitMQ server on this machine: install rabbitmq-server")
    return found[0]


@pytest.fixture
def broker(work: Path, secrets: dict[str, str]) -> Iterator[Url]:
    """A RabbitMQ node with compose's config, the definitions path pointed at this test's
    secrets; yields url(service): that service's THUMBLOOP_BROKER_URL, pointed at the node."""
    home = work / "rabbitmq"
    home.mkdir()
    port, dist = free_port(), free_port()
    conf = (DOCKER / "rabbitmq" / "thumbloop.conf").read_text(encoding="utf-8")
    conf = conf.replace("/run/secrets/", f"{work / 'secrets'}/")
    (home / "rabbitmq.conf").write_text(f"{conf}\nlisteners.tcp.default = 127.0.0.1:{port}\n")
    (home / "enabled_plugins").write_text("[].\n")
    argv, env = [_server_binary()], dict(os.environ)
    if os.geteuid() == 0:  # as the packaged service runs it (and with that user's Erlang cookie)
        argv = ["runuser", "-u", "rabbitmq", "--", *argv]
        env["HOME"] = pwd.getpwnam("rabbitmq").pw_dir
        os.chown(home, pwd.getpwnam("rabbitmq").pw_uid, -1)
    env |= {
        "RABBITMQ_CONF_ENV_FILE": "/dev/null",  # the machine's env file names its own node
        "RABBITMQ_NODENAME": f"thumbloop-test-{port}@localhost",
        "RABBITMQ_DIST_PORT": str(dist),
        "RABBITMQ_CONFIG_FILE": str(home / "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": str(home / "data"),
        "RABBITMQ_LOG_BASE": str(home / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(home / "enabled_plugins"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    out = work / "rabbitmq.out"
    proc = subprocess.Popen(
        argv, env=env, stdout=out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )

    def url(service: str) -> str:
        return secrets[f"{service}_broker_url"].replace("@rabbitmq:5672/", f"@127.0.0.1:{port}/")

    try:
        deadline = time.monotonic() + 90
        while True:  # the definitions are imported before the listener opens
            try:
                with Connection(url("worker"), connect_timeout=2) as conn:
                    conn.ensure_connection(max_retries=1)
                break
            except Exception:
                alive = proc.poll() is None
                assert alive and time.monotonic() < deadline, out.read_text(errors="replace")
                time.sleep(0.5)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}").geturl()


def _refused(url: str, act: Callable[[Any], Any]) -> bool:
    """Whether the broker refuses ``act(channel)``; publishes are confirmed, so a refused one
    shows here rather than on some later call."""
    with Connection(url, connect_timeout=5) as conn:
        try:
            act(conn.channel())
        except AccessRefused:
            return True
    return False


def _declare(name: str) -> Callable[[Any], Any]:
    return lambda ch: Queue(name, Exchange(name, "direct"), name)(ch).declare()


def _consume(name: str) -> Callable[[Any], Any]:
    return lambda ch: ch.basic_get(name)


def _publish(exchange: str, routing_key: str = "") -> Callable[[Any], Any]:
    return lambda ch: ch.basic_publish_confirm(Message(b"{}"), exchange, routing_key)


def test_each_user_reaches_only_its_queues(broker: Url) -> None:
    # with definitions loaded at boot RabbitMQ makes no guest user
    for user, password in (("guest", "guest"), ("telegram", "wrong")):
        with pytest.raises(AccessRefused):
            Connection(_as(broker("worker"), user, password), connect_timeout=5).connect()
    # what the services declare when they start (queues and the control exchange)
    for service, name in (("worker", DEFAULT_QUEUE), ("worker", DEAD_LETTER_QUEUE)):
        assert not _refused(broker(service), _declare(name)), name
    assert not _refused(broker("trainer"), _declare(TRAINING_QUEUE))
    control = Exchange(CONTROL, "fanout", durable=False, auto_delete=True)
    assert not _refused(broker("worker"), lambda ch: control(ch).declare())

    for bot in ("telegram", "slack"):
        assert not _refused(broker(bot), _declare(DEFAULT_QUEUE))
        assert not _refused(broker(bot), _publish(DEFAULT_QUEUE, DEFAULT_QUEUE))
        for name in (TRAINING_QUEUE, DEAD_LETTER_QUEUE, "planted"):
            assert _refused(broker(bot), _declare(name)), (bot, name)
            assert _refused(broker(bot), _consume(name)), (bot, name)
        assert _refused(broker(bot), _publish(CONTROL)), f"{bot} can broadcast control commands"
        assert _refused(broker(bot), _publish("amq.direct", TRAINING_QUEUE))
    for name in (TRAINING_QUEUE, "planted"):
        assert _refused(broker("worker"), _declare(name)), name
        assert _refused(broker("worker"), _consume(name)), name
    for name in (DEFAULT_QUEUE, DEAD_LETTER_QUEUE):
        assert _refused(broker("trainer"), _declare(name)), name
        assert _refused(broker("trainer"), _consume(name)), name
        assert _refused(broker("trainer"), _publish(name, name)), name
        assert _refused(broker("trainer"), _publish("", name)), name  # it sends no task
    assert not _refused(broker("beat"), _declare(TRAINING_QUEUE))
    assert not _refused(broker("beat"), _declare(DEFAULT_QUEUE))


def _log_of(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


TROUBLE = ("ACCESS_REFUSED", "NoPermissionError", "NOPERM", "Traceback")


def _wait(check: Callable[[], Any], what: str, log: Path, timeout: float = 90) -> Any:
    """``check()`` once true; fails at once when the service's log shows it was refused."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        text = _log_of(log)
        if any(trouble in text for trouble in TROUBLE):
            pytest.fail(f"{what}: {log.name} shows trouble\n{text[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"{what}: not within {timeout:.0f} s\n{_log_of(log)[-4000:]}")


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_postgres_db() as url:
        yield url


def _ran(task: str, log: Path) -> bool:
    return re.search(rf"learning\.{task}\[[^\]]+\] succeeded", _log_of(log)) is not None


@pytest.mark.postgres
def test_the_loop_runs_on_its_own_users(
    broker: Url, private_redis: int, secrets: dict[str, str], work: Path, database: str
) -> None:
    port = private_redis

    def env_of(service: str) -> dict[str, str]:
        return {
            "THUMBLOOP_HOME": str(work / service),
            "THUMBLOOP_DATABASE_URL": database,
            "THUMBLOOP_DEVICE": "cpu",
            "THUMBLOOP_BROKER_URL": broker(service),
            "THUMBLOOP_RESULT_BACKEND": local_redis(secrets[f"{service}_result_url"], port),
            "THUMBLOOP_REDIS_URL": local_redis(secrets[f"{service}_redis_url"], port),
            "SECRETS_DIR": str(work / "none"),  # the health check's: nothing mounted here
        }

    def run(service: str, **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        """compose's command for ``service``, on its users."""
        argv = [str(a) for a in SERVICES[service]["command"]]
        assert argv[:2] == ["thumbloop", "worker"]
        log = work / f"{service}.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "thumbloop", *argv[1:]],
            cwd=ROOT,
            env=os.environ | env_of(service) | extra,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return proc, log

    def healthy(service: str) -> bool:  # compose's health check: a ping through the broker
        check = [sys.executable, str(DOCKER / "healthcheck.py"), "worker"]
        env = os.environ | env_of(service)
        return subprocess.run(check, env=env, capture_output=True, timeout=60).returncode == 0

    def result(service: str, task_id: str) -> Any:
        backend = Celery(backend=env_of(service)["THUMBLOOP_RESULT_BACKEND"]).backend
        meta = backend.get_task_meta(task_id)
        return meta if meta["status"] == "SUCCESS" else None

    def waiting(queue: str) -> int:
        with Connection(broker("trainer")) as conn:
            try:
                return int(conn.default_channel.queue_declare(queue, passive=True).message_count)
            except NotFound:  # not declared yet
                return 0

    # a bot sends before any worker ran: its declare keeps the tasks
    queue = TaskQueue(broker("telegram"))
    item = interaction("alice", "where is my card")
    sent = [
        queue.send(RECORD_INTERACTION, interaction_payload(item)),
        queue.send(RECORD_VOTE, vote_payload(vote(item, "bob", 1))),
    ]
    queue.close()
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    try:
        procs.append(run("worker"))
        proc, log = procs[-1]
        for task_id in sent:
            meta = _wait(functools.partial(result, "worker", task_id), "worker stores", log)
            assert meta["result"] == "stored"
        assert _wait(lambda: healthy("worker"), "worker answers its ping", log)
        served = RedisPosteriors(local_redis(secrets["serving_redis_url"], port), "thumbloop")
        assert _posterior(served) == {"card_arrival/1": (2.0, 1.0)}
        stop_worker(proc)

        # beat sends the retrain checks to `training` and runs the default queue's
        # maintenance (posteriors, dead letters) on its own users
        fast = {f"THUMBLOOP_{k}_INTERVAL_S": "1" for k in ("RETRAIN_CHECK", "RECONCILE")}
        procs.append(run("beat", **fast, THUMBLOOP_REDRIVE_INTERVAL_S="1"))
        proc, log = procs[-1]
        _wait(lambda: waiting(TRAINING_QUEUE), "beat sends a retrain check", log)
        for task in ("reconcile_posteriors", "redrive_dead_letters"):
            _wait(functools.partial(_ran, task, log), f"beat runs {task}", log)
        assert _wait(lambda: healthy("beat"), "beat answers its ping", log)
        stop_worker(proc)

        procs.append(run("trainer", THUMBLOOP_RETRAIN_MIN_VOTES="1000"))
        proc, log = procs[-1]
        check = TaskQueue(broker("beat"))
        task_id = check.send(RETRAIN_IF_DUE, {})
        check.close()
        meta = _wait(lambda: result("trainer", task_id), "trainer checks", log, timeout=120)
        assert meta["result"]["due"] is False
        assert _wait(lambda: waiting(TRAINING_QUEUE) == 0, "trainer takes beat's checks", log)
        assert _wait(lambda: healthy("trainer"), "trainer answers its ping", log)
        stop_worker(proc)
    finally:
        for proc, _ in procs:
            stop_worker(proc)
    for _, log in procs:
        text = _log_of(log)
        for trouble in TROUBLE:
            assert trouble not in text, f"{log.name}:\n{text[-4000:]}"


def _posterior(store: RedisPosteriors) -> dict[str, tuple[float, float]]:
    async def read() -> dict[str, tuple[float, float]]:
        try:
            return await store.get("card_arrival")
        finally:
            await store.close()

    return asyncio.run(read())
