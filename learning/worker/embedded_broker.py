"""The embedded broker: kombu's SQLAlchemy transport, made to lose nothing when a worker is
killed, safe to use from the pool's threads, polling faster than its 1 s default, and safe
when several processes create the same queue at once.

kombu keeps every message it ever delivered in ``kombu_message`` with ``visible = 0``: an
acknowledgement changes nothing on disk, and only a clean shutdown puts unacknowledged messages
back (as copies). So a hard-killed worker's reserved tasks stayed invisible for ever, and the
table grew by one row per task. Here a message taken by a consumer is *leased*: its row is
marked (``version = LEASED``) with the time, the consumer renews the lease from a thread while
it holds the message, deletes the row when it is acknowledged, and makes the same row visible
again when it is rejected or the worker shuts down. A lease not renewed for ``LEASE_S`` (its
consumer died) is made visible again by any consumer's sweep, including the one a restarted
worker runs at once. Redelivery is safe: the tasks are idempotent and acknowledged late.

kombu's channel shares one SQLAlchemy session between the consuming thread and the pool's
result thread, which requeues the task of a lost pool child; the two committing at once raised
``IllegalStateChangeError`` in the consumer and stopped the worker (docs/chaos.md). Leases,
acknowledgements and requeues here use their own connections; kombu's session is used under a
lock.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from json import loads
from queue import Empty
from typing import Any

import kombu.transport as kombu_transport
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport.sqlalchemy import Channel as SqlaChannel
from kombu.transport.sqlalchemy import Transport as SqlaTransport
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import Engine, Table, delete, select, true, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

log = logging.getLogger(__name__)

# kombu's rows start at version 1 and its ORM only counts up: 0 marks a lease of ours
LEASED = 0
LEASE_S = 15.0  # a consumer silent this long is dead: its messages are delivered again
RENEW_S = 3.0  # how often a consumer renews its leases and sweeps expired ones


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Leases:
    """The messages one channel holds (delivery tag → row id), renewed from a daemon thread
    that also sweeps other consumers' expired leases and retries deletions that failed."""

    def __init__(self, engine: Engine, table: Table, lease_s: float, renew_s: float) -> None:
        self.engine, self.table = engine, table
        self.lease_s, self.renew_s = lease_s, renew_s
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}
        self._finished: set[int] = set()  # acknowledged, the row not deleted yet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self.sweep()  # a restarted worker takes back what its dead predecessor held
            self._thread = threading.Thread(target=self._run, name="broker-leases", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def hold(self, tag: str, row_id: int) -> None:
        with self._lock:
            self._held[tag] = row_id

    def release(self, tag: str) -> int | None:
        with self._lock:
            return self._held.pop(tag, None)

    def finish(self, tag: str) -> None:
        """The message was acknowledged (or is not to be redelivered): delete its row."""
        row_id = self.release(tag)
        if row_id is None:
            return
        try:
            self._delete([row_id])
        except SQLAlchemyError:  # retried by the thread; until then the lease is renewed
            log.warning("embedded broker: acknowledged message not deleted yet, will retry")
            with self._lock:
                self._finished.add(row_id)

    def give_back(self, tag: str) -> bool:
        """Make the message visible again (rejected with requeue, or a clean shutdown). False
        when this channel does not hold it."""
        row_id = self.release(tag)
        if row_id is None:
            return False
        with self.engine.begin() as conn:
            conn.execute(
                update(self.table)
                .where(self.table.c.id == row_id)
                # a NULL time sorts first: the message goes back near its old place
                .values(visible=True, version=1, timestamp=None)
            )
        return True

    def sweep(self) -> int:
        """Make messages whose lease expired visible again; drop rows kombu itself left
        invisible (delivered before leases existed: acknowledged, or lost long ago)."""
        t = self.table
        cutoff = _now() - timedelta(seconds=self.lease_s)
        with self.engine.begin() as conn:
            restored = conn.execute(
                update(t)
                .where(t.c.visible.is_(False), t.c.version == LEASED, t.c.timestamp < cutoff)
                .values(visible=True, version=1, timestamp=None)
            ).rowcount
            conn.execute(delete(t).where(t.c.visible.is_(False), t.c.version != LEASED))
        if restored:
            log.warning(
                "embedded broker: %d message(s) of a dead consumer back in the queue", restored
            )
        return int(restored or 0)

    def renew(self) -> None:
        with self._lock:
            held = [*self._held.values(), *self._finished]
            finished = list(self._finished)
        if finished:
            self._delete(finished)
            with self._lock:
                self._finished.difference_update(finished)
        if held:
            with self.engine.begin() as conn:
                conn.execute(
                    update(self.table)
                    .where(self.table.c.id.in_(held), self.table.c.visible.is_(False))
                    .values(timestamp=_now())
                )

    def _delete(self, row_ids: Iterable[int]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(self.table).where(self.table.c.id.in_(list(row_ids))))

    def _run(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                self.renew()
                self.sweep()
            except SQLAlchemyError as exc:  # a locked or busy database: next round
                log.warning("embedded broker: lease renewal failed (%s), retrying", type(exc))


class Channel(SqlaChannel):
    def __init__(self, connection: Any, **kwargs: Any) -> None:
        options = connection.client.transport_options
        self._lease_s = float(options.get("lease_s", LEASE_S))
        self._renew_s = float(options.get("renew_s", RENEW_S))
        self._session_lock = threading.RLock()
        self._leases: Leases | None = None
        self._queue_ids: dict[str, int] = {}
        self._no_ack_queues: set[str] = set()
        super().__init__(connection, **kwargs)

    def _engine_from_config(self) -> Any:
        options = self.connection.client.transport_options
        saved = {k: options.pop(k) for k in ("lease_s", "renew_s") if k in options}
        try:  # kombu hands every other transport option to create_engine
            return super()._engine_from_config()
        finally:
            options.update(saved)

    @property
    def leases(self) -> Leases:
        if self._leases is None:
            engine, _ = self._open()
            table = self.message_cls.__table__
            self._leases = Leases(engine, table, self._lease_s, self._renew_s)
        return self._leases

    def _get_or_create(self, queue: str) -> Any:
        # kombu looks, then inserts, guarded by a lock of this process only: a worker starting
        # while the producer sends its first task can lose that race and used to stop on it
        with self._session_lock:
            try:
                return super()._get_or_create(queue)
            except IntegrityError:  # another process created the queue in between: use theirs
                self.session.rollback()
                return self.session.query(self.queue_cls).filter(self.queue_cls.name == queue).one()

    def _queue_id(self, queue: str) -> int:
        if queue not in self._queue_ids:
            self._queue_ids[queue] = int(self._get_or_create(queue).id)
        return self._queue_ids[queue]

    def _get(self, queue: str, timeout: Any = None) -> Any:
        leases = self.leases
        leases.start()
        t = leases.table
        queue_id = self._queue_id(queue)
        with leases.engine.begin() as conn:
            if conn.dialect.name == "sqlite":  # take the write lock before reading
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            row = conn.execute(
                select(t.c.id, t.c.payload)
                .where(t.c.queue_id == queue_id, t.c.visible == true())
                .order_by(t.c.timestamp, t.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                raise Empty()
            if queue in self._no_ack_queues:
                conn.execute(delete(t).where(t.c.id == row.id))
            else:
                conn.execute(
                    update(t)
                    .where(t.c.id == row.id)
                    .values(visible=False, version=LEASED, timestamp=_now())
                )
        payload = loads(bytes_to_str(row.payload))
        if queue not in self._no_ack_queues:
            leases.hold(payload["properties"]["delivery_tag"], row.id)
        return payload

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        if no_ack:  # nothing will acknowledge these: a delivered message is gone
            self._no_ack_queues.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    def basic_get(self, queue: str, no_ack: bool = False, **kwargs: Any) -> Any:
        message = super().basic_get(queue, no_ack=no_ack, **kwargs)
        if message is not None and no_ack:
            self.leases.finish(message.delivery_tag)
        return message

    def basic_ack(self, delivery_tag: str, multiple: bool = False) -> None:
        super().basic_ack(delivery_tag, multiple)
        self.leases.finish(delivery_tag)

    def basic_reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().basic_reject(delivery_tag, requeue=requeue)  # requeue: through _restore
        if not requeue:
            self.leases.finish(delivery_tag)

    def _restore(self, message: Any) -> None:
        # the same row comes back rather than a copy beside the invisible original
        if not self.leases.give_back(message.delivery_tag):
            with self._session_lock:
                super()._restore(message)

    def _put(self, queue: Any, *args: Any, **kwargs: Any) -> Any:
        with self._session_lock:
            super()._put(queue, *args, **kwargs)

    def _purge(self, queue: str) -> int:
        with self._session_lock:
            return int(super()._purge(queue))

    def _size(self, queue: str) -> int:
        with self._session_lock:
            return int(super()._size(queue))

    def close(self) -> None:
        super().close()  # puts back what this channel held
        if self._leases is not None:
            self._leases.stop()


class Transport(SqlaTransport):
    Channel = Channel
    polling_interval = 0.05


def _after_fork_in_child() -> None:
    # a pool child must not use the SQLite connections its parent opened (it publishes
    # retries through its own)
    for engine, _ in list(SqlaChannel._engines.values()):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def install() -> None:
    """Make `sqla+…` broker URLs in this process use this transport. kombu caches a transport
    class by name once a connection resolved it: a `sqla+` connection made before this (a
    publisher in the same process) would otherwise keep plain kombu's, without leases."""
    TRANSPORT_ALIASES["sqla"] = f"{__name__}:Transport"
    kombu_transport._transport_cache.pop("sqla", None)
