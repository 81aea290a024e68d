"""A TCP port forwarded to Redis: closed, it is a broker that is down; opened, the broker is
back (the bot's broker URL stays the same throughout). The chaos runs' gate
(:class:`bench.chaos_servers.TcpGate`) with Redis as its default target."""

from __future__ import annotations

from bench.chaos_servers import TcpGate
from tests.services import redis_host_port


class TcpProxy(TcpGate):
    """Forwards a local port to Redis; closed, it is a broker that is down."""

    def __init__(self, port: int, target: tuple[str, int] | None = None) -> None:
        super().__init__(target or redis_host_port(), port=port)

    def open(self) -> None:
        self.up()
