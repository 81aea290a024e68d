"""The stack a chaos run drives: a backend (embedded default or production services), real
``thumbloop worker`` processes to start and kill, a sender that retries like the bots' outbox,
and waiting for the stored state to settle."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.chaos_oracle import NAMESPACE, Task
from thumbloop.queue import TaskQueue
from thumbloop.store.db import upgrade

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Backend:
    name: str  # "embedded" or "production"
    home: Path
    db_url: str
    broker_url: str
    redis_url: str | None  # posteriors (and results); None on the embedded default

    def env(self, **extra: str) -> dict[str, str]:
        backend = self.broker_url
        if backend.startswith("sqla+"):
            backend = backend.replace("sqla+", "db+")
        env = {
            "THUMBLOOP_HOME": str(self.home),
            "THUMBLOOP_DATABASE_URL": self.db_url,
            "THUMBLOOP_BROKER_URL": self.broker_url,
            "THUMBLOOP_RESULT_BACKEND": self.redis_url or backend,
            "THUMBLOOP_MODEL_NAME": NAMESPACE,
            "THUMBLOOP_DEVICE": "cpu",
            # no retrain during a chaos run: only recording is under test
            "THUMBLOOP_RETRAIN_CHECK_INTERVAL_S": "86400",
            "THUMBLOOP_VISIBILITY_TIMEOUT_S": "5",
        }
        if self.redis_url:
            env["THUMBLOOP_REDIS_URL"] = self.redis_url
        return env | extra


def embedded(home: Path) -> Backend:
    home.mkdir(parents=True, exist_ok=True)
    db = f"sqlite:///{home}/thumbloop.db"
    upgrade(db)
    return Backend("embedded", home, db, f"sqla+sqlite:///{home}/broker.db", None)


def production(home: Path, db_url: str, redis_url: str, broker_url: str | None = None) -> Backend:
    """PostgreSQL for the rows, Redis for posteriors, and Redis as broker (docker/compose.yaml's
    layout) unless ``broker_url`` names another (RabbitMQ)."""
    home.mkdir(parents=True, exist_ok=True)
    upgrade(db_url)
    name = "production" if broker_url is None else "production-rabbitmq"
    return Backend(name, home, db_url, broker_url or redis_url, redis_url)


def stop_group(
    proc: subprocess.Popen[bytes] | None, grace_s: float = 30, *, leader_only: bool = False
) -> None:
    """SIGTERM to a process started in its own session and its children (``leader_only``: to
    the process alone, as ``docker stop`` does, so a Celery worker's warm shutdown lets its pool
    child finish the task in hand), SIGKILL to the group after ``grace_s``."""
    if proc is None or proc.poll() is not None:
        return
    if leader_only:
        os.kill(proc.pid, signal.SIGTERM)
    else:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class Worker:
    """One ``thumbloop worker`` (a Celery parent and its pool child) in its own process group."""

    def __init__(self, backend: Backend, *, beat: bool = False, **env: str) -> None:
        self.backend, self.beat, self.extra = backend, beat, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        cmd = [sys.executable, "-m", "thumbloop", "worker", "--concurrency", "1"]
        level = os.environ.get("CHAOS_WORKER_LOGLEVEL", "WARNING")  # INFO: every task's fate
        cmd += ["--loglevel", level, "--beat" if self.beat else "--no-beat"]
        log_path = self.backend.home / f"worker-{uuid.uuid4().hex[:6]}.log"
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=os.environ | self.backend.env(**self.extra),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1

    def children(self) -> list[psutil.Process]:
        if self.proc is None or self.proc.poll() is not None:
            return []
        try:
            return psutil.Process(self.proc.pid).children()
        except psutil.NoSuchProcess:
            return []

    def kill_parent(self) -> None:
        """SIGKILL to the whole group: the parent and its pool child die at once (a host or
        container crash)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def kill_child(self) -> bool:
        """SIGKILL to the pool child only: the parent sees the child lost and starts another."""
        for child in self.children():
            try:
                child.kill()
                return True
            except psutil.NoSuchProcess:
                continue
        return False

    def stop(self) -> None:
        stop_group(self.proc)


class Sender(threading.Thread):
    """Sends tasks at ``rate`` per second (None: as fast as the broker takes them), retrying
    each until the broker takes it, as the bots' outbox does."""

    def __init__(self, broker_url: str, tasks: Sequence[Task], rate: float | None = None) -> None:
        super().__init__(daemon=True)
        self.broker_url, self.tasks, self.rate = broker_url, tasks, rate
        self.sent = 0
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        queue = TaskQueue(self.broker_url)
        begin = time.monotonic()
        try:
            for i, (name, payload) in enumerate(self.tasks):
                if self.rate:
                    delay = begin + i / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                while True:
                    try:
                        queue.send(name, payload)
                        break
                    except Exception:  # broker away: the outbox keeps it and tries again
                        self.retries += 1
                        queue.close()
                        time.sleep(0.5)
                        queue = TaskQueue(self.broker_url)
                self.sent += 1
        except BaseException as exc:  # reported by the scenario, not lost in a thread
            self.error = exc
        finally:
            queue.close()


def settle(
    read: Callable[[], Any], done: Callable[[Any], bool], quiet_s: float, deadline_s: float
) -> tuple[Any, float]:
    """Poll ``read`` until ``done`` holds, or until it has not changed for ``quiet_s`` (a
    stuck state: something was lost), or ``deadline_s`` passed. Returns (last value, seconds)."""
    begin = time.monotonic()
    last, since = None, begin
    while True:
        try:
            value = read()
        except Exception:  # a server the scenario took away: not settled
            value = None
        now = time.monotonic()
        if value is not None and done(value):
            return value, now - begin
        if value != last:
            last, since = value, now
        if now - since > quiet_s or now - begin > deadline_s:
            return last, now - begin
        time.sleep(0.5)
