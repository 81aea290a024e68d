"""Real servers on loopback for the integration tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis
import uvicorn

from tests.services import POSTGRES_ADMIN_URL, postgres_url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def run_uvicorn(
    app: Any, ready_path: str | None = "/readyz", timeout: float = 120
) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready_path is None:
                httpx.get(base + "/", timeout=1)
                break
            if httpx.get(base + ready_path, timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError(f"server on {base} did not become ready")
        time.sleep(0.1)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def fresh_postgres_db() -> Iterator[str]:
    """A new, empty PostgreSQL database on the machine's server; dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text

    name = f"thumbloop_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield postgres_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def wait_until(check: Any, timeout: float, interval: float = 0.3, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextmanager
def flushed_redis(url: str) -> Iterator[str]:
    """A Redis database of the machine's server, emptied before and after use. Refused while
    something else consumes a queue there (a worker leaked by an earlier run would take this
    test's tasks and the test would fail for no visible reason)."""
    client = redis.Redis.from_url(url)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    stray = [
        c["addr"]
        for c in client.client_list()
        if str(c.get("db")) == str(db) and c.get("cmd") in ("brpop", "blpop", "blmove")
    ]
    if stray:
        client.close()
        raise RuntimeError(
            f"{url}: another process is consuming queues here ({', '.join(stray)}); "
            "stop the stray worker (ps aux | grep 'thumbloop worker') and run again"
        )
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
