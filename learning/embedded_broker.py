"""The embedded broker: kombu's SQLAlchemy transport polling faster than its 1 s default.

With late acknowledgement and a prefetch of one, the worker polls again after every message,
so the default interval caps the embedded default at about one task a second.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Transport as SqlaTransport


class Transport(SqlaTransport):
    polling_interval = 0.05


def install() -> None:
    """Make `sqla+…` broker URLs in this process use the faster-polling transport."""
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
