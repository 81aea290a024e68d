"""A real Celery worker process for the learning tasks, and row counts to wait on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from sqlalchemy import func, select

from bench.chaos_stack import stop_group
from thumbloop.store.db import make_engine, session_scope

ROOT = Path(__file__).resolve().parents[2]


def start_worker(env: dict[str, str], *, beat: bool = False) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "thumbloop",
        "worker",
        "--concurrency",
        "1",
        "--loglevel",
        "WARNING",
    ]
    cmd.append("--beat" if beat else "--no-beat")
    log = open(env["THUMBLOOP_HOME"] + f"/worker-{uuid.uuid4().hex[:6]}.log", "wb")  # noqa: SIM115
    return subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """SIGTERM: stop as ``docker stop`` does, to the main process alone, so Celery's warm
    shutdown lets the pool child finish its task (a SIGTERM to the whole group kills that child
    mid-task: WorkerLostError). Any other signal (SIGKILL: a crash) goes to the whole group."""
    if sig == signal.SIGTERM:
        stop_group(proc, leader_only=True)
        return
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    stop_group(proc)


def worker_env(
    home: Path, db_url: str, broker: str, redis_url: str | None, **extra: str
) -> dict[str, str]:
    env = {
        "THUMBLOOP_HOME": str(home),
        "THUMBLOOP_DATABASE_URL": db_url,
        "THUMBLOOP_BROKER_URL": broker,
        "THUMBLOOP_RESULT_BACKEND": broker.replace("sqla+", "db+")
        if broker.startswith("sqla+")
        else broker,
        "THUMBLOOP_DEVICE": "cpu",
    }
    if redis_url:
        env["THUMBLOOP_REDIS_URL"] = redis_url
    return env | extra


def count_rows(url: str, model: type, **where: object) -> int:
    engine = make_engine(url)
    with session_scope(engine) as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        n = int(s.scalar(q) or 0)
    engine.dispose()
    return n
