"""The embedded broker's leases (kombu's SQLAlchemy transport on SQLite): a message taken by a
consumer that died comes back, one held by a live consumer does not, an acknowledged message
leaves no row behind, a requeued one comes back as itself, and kombu's own leftover rows are
dropped rather than delivered again."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from kombu import Connection

from learning.worker.embedded_broker import install

FAST = {"lease_s": 1.0, "renew_s": 0.2}


def _url(tmp_path: Path) -> str:
    return f"sqla+sqlite:///{tmp_path / 'broker.db'}"


def _rows(tmp_path: Path) -> list[tuple[int, int]]:
    with sqlite3.connect(tmp_path / "broker.db") as db:
        return list(db.execute("SELECT id, visible FROM kombu_message ORDER BY id"))


def _send(url: str, items: list[Any]) -> None:
    with Connection(url) as conn:
        queue = conn.SimpleQueue("q")
        for item in items:
            queue.put(item)
        queue.close()


def _take_and_hang(url: str, taken: Any) -> None:
    install()
    conn = Connection(url, transport_options=FAST)
    message = conn.SimpleQueue("q").get(timeout=10)
    taken.put(message.payload)
    time.sleep(120)  # never acknowledges: killed first


def _take_all(url: str, n: int, timeout: float = 20.0) -> list[Any]:
    got = []
    with Connection(url, transport_options=FAST) as conn:
        queue = conn.SimpleQueue("q")
        for _ in range(n):
            message = queue.get(timeout=timeout)
            got.append(message.payload)
            message.ack()
        queue.close()
    return got


def test_a_message_taken_by_a_killed_consumer_is_delivered_again(tmp_path: Path) -> None:
    install()
    url = _url(tmp_path)
    _send(url, [{"vote": 1}, {"vote": 2}])
    ctx = mp.get_context("spawn")
    taken = ctx.Queue()
    dead = ctx.Process(target=_take_and_hang, args=(url, taken))
    dead.start()
    assert taken.get(timeout=60) == {"vote": 1}
    assert dead.pid is not None
    os.kill(dead.pid, signal.SIGKILL)
    dead.join(10)
    assert sorted(m["vote"] for m in _take_all(url, 2)) == [1, 2]
    assert _rows(tmp_path) == []  # acknowledged: gone, not kept invisible


def test_a_live_consumer_keeps_what_it_holds_past_the_lease(tmp_path: Path) -> None:
    install()
    url = _url(tmp_path)
    _send(url, [{"vote": 1}])
    with Connection(url, transport_options=FAST) as holder:
        held = holder.SimpleQueue("q").get(timeout=10)
        time.sleep(3 * FAST["lease_s"])  # the holder's thread renews the lease meanwhile
        with Connection(url, transport_options=FAST) as other:
            queue = other.SimpleQueue("q")
            assert queue.qsize() == 0
            try:
                queue.get(timeout=1.0)
                raise AssertionError("a message held by a live consumer was delivered twice")
            except queue.Empty:
                pass
            queue.close()
        held.ack()
    assert _rows(tmp_path) == []


def test_a_requeued_message_comes_back_as_the_same_row(tmp_path: Path) -> None:
    install()
    url = _url(tmp_path)
    _send(url, [{"vote": 1}])
    with Connection(url) as conn:
        queue = conn.SimpleQueue("q")
        message = queue.get(timeout=10)
        [(row, visible)] = _rows(tmp_path)
        assert visible == 0
        message.requeue()
        assert _rows(tmp_path) == [(row, 1)]
        again = queue.get(timeout=10)
        assert again.payload == {"vote": 1}
        again.ack()
        queue.close()
    assert _rows(tmp_path) == []


def test_a_clean_shutdown_puts_back_what_was_not_acknowledged(tmp_path: Path) -> None:
    install()
    url = _url(tmp_path)
    _send(url, [{"vote": 1}, {"vote": 2}])
    with Connection(url) as conn:
        queue = conn.SimpleQueue("q")
        queue.get(timeout=10)  # taken, never acknowledged
        queue.close()
    assert [visible for _, visible in _rows(tmp_path)] == [1, 1]
    assert sorted(m["vote"] for m in _take_all(url, 2)) == [1, 2]


def test_rows_kombu_left_invisible_are_dropped_not_delivered(tmp_path: Path) -> None:
    """kombu never deleted a delivered message: a broker.db from before leases holds one
    invisible row per task ever run. Delivering them again would replay every task."""
    install()
    url = _url(tmp_path)
    _send(url, [{"old": 1}, {"new": 2}])
    with sqlite3.connect(tmp_path / "broker.db") as db:  # as kombu's own _get left them
        db.execute("UPDATE kombu_message SET visible = 0, version = 2 WHERE id = 1")
    assert _take_all(url, 1) == [{"new": 2}]
    assert _rows(tmp_path) == []


def test_requeues_from_another_thread_while_consuming(tmp_path: Path) -> None:
    """The pool's result thread requeues the task of a lost pool child while the consumer
    thread polls: kombu's shared session raised IllegalStateChangeError and stopped the
    worker."""
    install()
    url = _url(tmp_path)
    n = 60
    _send(url, [{"i": i} for i in range(n)])
    seen: dict[int, int] = {}
    errors: list[BaseException] = []
    with Connection(url) as conn:
        queue = conn.SimpleQueue("q")
        to_requeue: list[Any] = []
        lock = threading.Lock()
        done = threading.Event()

        def requeue_some() -> None:
            while not done.is_set():
                with lock:
                    batch, to_requeue[:] = list(to_requeue), []
                for message in batch:
                    try:
                        message.requeue()
                    except BaseException as exc:  # reported below
                        errors.append(exc)
                time.sleep(0.001)

        thread = threading.Thread(target=requeue_some)
        thread.start()
        try:
            acked = 0
            deadline = time.monotonic() + 60
            while acked < n and time.monotonic() < deadline:
                try:
                    message = queue.get(timeout=1.0)
                except queue.Empty:
                    continue
                i = message.payload["i"]
                seen[i] = seen.get(i, 0) + 1
                if seen[i] == 1:  # the first delivery goes back, as a lost child's would
                    with lock:
                        to_requeue.append(message)
                else:
                    message.ack()
                    acked += 1
        finally:
            done.set()
            thread.join(10)
            queue.close()
    assert errors == []
    assert sorted(seen) == list(range(n)) and all(c == 2 for c in seen.values())
    assert _rows(tmp_path) == []


def test_install_replaces_a_transport_kombu_had_already_resolved(tmp_path: Path) -> None:
    """kombu caches the class of a transport name it resolved once: a `sqla+` connection made
    in this process before install() (a publisher) kept the lease-less transport for good."""
    import kombu.transport as kt

    from learning.worker.embedded_broker import Transport

    before = kt.TRANSPORT_ALIASES["sqla"]
    try:
        kt.TRANSPORT_ALIASES["sqla"] = "kombu.transport.sqlalchemy:Transport"
        kt._transport_cache.pop("sqla", None)
        assert Connection(_url(tmp_path)).get_transport_cls() is not Transport  # cached now
        install()
        assert Connection(_url(tmp_path)).get_transport_cls() is Transport
    finally:
        kt.TRANSPORT_ALIASES["sqla"] = before
        kt._transport_cache.pop("sqla", None)
        install()
