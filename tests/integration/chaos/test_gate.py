"""The TCP gate the chaos runs put in front of a broker: down means down, for the connections
open at that moment and for every one tried after (the first version let one through)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import pytest

from bench.chaos_servers import TcpGate


@contextlib.contextmanager
def echo_server() -> Iterator[tuple[str, int]]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(1024):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[:2]
    finally:
        stop.set()
        server.shutdown(socket.SHUT_RDWR)
        server.close()


def roundtrip(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as c:
        c.sendall(b"ping")
        return c.recv(4)


def test_down_cuts_open_connections_and_refuses_every_new_one() -> None:
    with echo_server() as target:
        gate = TcpGate(target)
        gate.up()
        try:
            assert roundtrip(gate.port) == b"ping"
            held = socket.create_connection(("127.0.0.1", gate.port), timeout=2)
            held.sendall(b"ping")
            assert held.recv(4) == b"ping"
            gate.down()
            with contextlib.suppress(OSError):
                held.sendall(b"ping")
            assert held.recv(4) == b"", "the open connection was cut"
            held.close()
            for _ in range(5):
                with pytest.raises(ConnectionRefusedError):
                    roundtrip(gate.port)
            gate.up()  # the same port again: clients keep their URL
            assert roundtrip(gate.port) == b"ping"
        finally:
            gate.close()
