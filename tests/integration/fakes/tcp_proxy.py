"""A TCP port forwarded to Redis: closed, it is a broker that is down; opened, the broker is
back (the bot's broker URL stays the same throughout)."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.services import redis_host_port


class TcpProxy:
    """Forwards a local port to Redis; closed, it is a broker that is down."""

    def __init__(self, port: int, target: tuple[str, int] | None = None) -> None:
        target = target or redis_host_port()
        self.port, self.target = port, target
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
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
        self._stop.set()
        if self._server is not None:
            self._server.close()
        for c in self._conns:
            c.close()
