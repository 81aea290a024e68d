"""Throwaway servers for the chaos runs: a private redis-server and a private PostgreSQL cluster
on their own ports and data directories, which the scenarios may pause, stop and turn read-only.

The machine's shared PostgreSQL (5432), Redis (6379) and RabbitMQ are never touched by a
fault: other tests use them at the same time. Nothing here needs a server to be installed as a
service: ``redis-server`` on the PATH and PostgreSQL's ``initdb``/``pg_ctl`` (found under
``/usr/lib/postgresql/*/bin`` when not on the PATH) are enough. As root, PostgreSQL runs as the
``postgres`` user (``initdb`` refuses root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import redis
from sqlalchemy import create_engine, text

# the machine's RabbitMQ (the tests' THUMBLOOP_TEST_RABBITMQ_URL when set)
RABBITMQ_URL = os.environ.get("THUMBLOOP_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


REDIS_OPTIONS = "--bind 127.0.0.1 --appendonly no --daemonize no --loglevel warning"


class PrivateRedis:
    """A redis-server of its own (no persistence) that can be paused like a stalled host."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not on the PATH")
        self.proc = subprocess.Popen(
            [exe, *f"--port {self.port} {REDIS_OPTIONS}".split(), "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.RedisError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} did not start") from None
                time.sleep(0.1)
        client.close()

    def pause(self) -> None:
        """SIGSTOP: connections stay open and every command hangs, as on a stalled host."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.paused:
            self.resume()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@contextmanager
def private_redis(port: int | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def postgres_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    if not candidates:
        raise RuntimeError(f"{name} not found (PATH, /usr/lib/postgresql/*/bin)")
    return candidates[0]


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temp dir, trust auth on 127.0.0.1 only. ``stop`` is
    an immediate shutdown (a crash, as far as clients can tell); ``read_only`` makes every new
    transaction read-only and cuts the open sessions, as a failover to a standby would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="thumbloop-chaos-pg-"))
        self.data = self.root / "data"
        self.admin_url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}/chaos"
        self._as_postgres: list[str] = []
        if os.geteuid() == 0:  # initdb refuses root
            shutil.chown(self.root, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*self._as_postgres, *args], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def init(self) -> None:
        self._run(
            postgres_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()
        self._admin("CREATE DATABASE chaos")

    def start(self) -> None:
        # fsync off is safe here (the kernel outlives the server's processes, and an operating
        # system crash is no scenario), but a commit must reach the WAL before it returns, as
        # on a real server: with synchronous_commit off an immediate shutdown drops the last
        # commits the worker was told had succeeded, which reads as a lost vote
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} "
            "-c fsync=off -c synchronous_commit=on -c full_page_writes=off "
            "-c max_connections=200"
        )
        log = str(self.root / "postgres.log")
        pg_ctl = postgres_bin("pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def _admin(self, sql: str) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(sql))
        engine.dispose()

    def read_only(self, on: bool) -> None:
        self._admin(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
        self._admin("SELECT pg_reload_conf()")
        if on:  # sessions that began before the reload keep writing: cut them
            self._admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = 'chaos' AND pid <> pg_backend_pid()"
            )

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):  # already down
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


@contextmanager
def private_postgres(port: int | None = None) -> Iterator[PrivatePostgres]:
    server = PrivatePostgres(port or free_port())
    try:
        server.init()
        yield server
    finally:
        server.destroy()


@contextmanager
def private_vhost(url: str = RABBITMQ_URL) -> Iterator[str]:
    """A throwaway virtual host on the machine's RabbitMQ (``rabbitmqctl``, as root): the
    scenario's queues start empty and leave nothing behind, and no fault reaches the broker
    itself (the scenarios that use it kill workers, not the broker). Yields its broker URL."""
    name = f"chaos-{os.getpid()}-{free_port()}"
    user = urlsplit(url).username or "guest"

    def ctl(*args: str) -> None:
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)

    ctl("add_vhost", name)
    try:
        ctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield urlsplit(url)._replace(path=f"/{name}").geturl()
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            ctl("delete_vhost", name)


class TcpGate:
    """A local port forwarded to a server, that can be shut like a server that went away:
    ``down()`` refuses new connections and cuts the open ones (as a crashed broker or a lost
    route does), ``up()`` lets them through again on the same port, so every client keeps the
    URL it started with."""

    def __init__(self, target: tuple[str, int], port: int | None = None) -> None:
        self.target = target
        self.port = port or free_port()
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def up(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            # close() alone does not wake a thread blocked in accept(): on Linux that call goes
            # on listening and lets one more connection through (a chaos run saw a bot send
            # through a "down" broker); shutdown() makes it return at once
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed by down()
            if self._server is not server:  # taken down while this one came in
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.down()
