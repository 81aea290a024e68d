"""The embedded broker: kombu's SQLAlchemy transport, polling faster than its 1 s default and
safe when several processes create the same queue at once.

With late acknowledgement and a prefetch of one, the worker polls again after every message,
so the default interval caps the embedded default at about one task a second.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SqlaChannel
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from sqlalchemy.exc import IntegrityError


class Channel(SqlaChannel):
    def _get_or_create(self, queue: str) -> Any:
        # kombu looks, then inserts, guarded by a lock of this process only: a worker starting
        # while the producer sends its first task can lose that race and used to stop on it
        try:
            return super()._get_or_create(queue)
        except IntegrityError:  # another process created the queue in between: use theirs
            self.session.rollback()
            return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()


class Transport(SqlaTransport):
    Channel = Channel
    polling_interval = 0.05


def install() -> None:
    """Make `sqla+…` broker URLs in this process use the faster-polling transport."""
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
