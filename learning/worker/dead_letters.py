"""Dead letters: tasks that ran out of retries, kept until they can be sent again.

A recording task that still fails after its retries (the database down for longer than the
retry budget, a bug) is not lost. It is recorded in ``dropped_tasks`` as ``failed`` when the
database takes the write, or else put on the broker's ``thumbloop.dead-letters`` queue, which no
worker consumes. A redrive (beat every ``THUMBLOOP_REDRIVE_INTERVAL_S``, or ``thumbloop
redrive``) first moves the broker's dead letters into the table, then sends each waiting one
through the queue again and blanks its payload. The tasks are idempotent, so a task sent twice
is stored once. A dead letter that has failed more than ``THUMBLOOP_REDRIVE_MAX_ATTEMPTS`` times
(a bug, not an outage) waits for ``thumbloop redrive --all``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kombu import Connection
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from thumbloop.store.db import insert_for, session_scope
from thumbloop.store.privacy import forgotten_before
from thumbloop.store.schema import FAILED, DroppedTaskRow
from thumbloop.task_names import RECORD_INTERACTION, RECORD_VOTE, WITHDRAW_VOTE

log = logging.getLogger(__name__)

DEAD_LETTER_QUEUE = "thumbloop.dead-letters"

Send = Callable[[str, dict[str, Any]], Any]  # (task name, kwargs): TaskQueue.send and the like


def fingerprint(task: str, payload: dict[str, Any]) -> str:
    blob = json.dumps([task, payload], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


# SQLSTATE 25006: a write refused by a read-only server, as after a failover to a standby; it
# passes like an outage does, so it is retried like one rather than dead-lettered at once
READ_ONLY_SQLSTATE = "25006"


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: the database or broker is away (or read-only for a while)."""
    if isinstance(exc, OperationalError | ConnectionError):
        return True
    orig = getattr(exc, "orig", None)
    return isinstance(exc, DBAPIError) and getattr(orig, "pgcode", None) == READ_ONLY_SQLSTATE


def reason_of(exc: BaseException) -> str:
    """The error's class and first line: enough to tell an outage from a bug, and short of the
    statement and whatever detail lines a driver adds."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def record_failure(session: Session, task: str, payload: dict[str, Any], reason: str) -> None:
    """Keep a dead letter to send again; the same task and payload recorded again (it failed
    again after a redrive, or the broker handed the same dead letter over twice) is one row with
    one more attempt."""
    now = datetime.now(UTC)
    stmt = insert_for(session)(DroppedTaskRow).values(
        task=task,
        reason=reason,
        payload=json.dumps(payload, default=str),
        kind=FAILED,
        fingerprint=fingerprint(task, payload),
        attempts=1,
        dropped_at=now,
        redriven_at=None,
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["fingerprint"],
            set_={
                "reason": stmt.excluded.reason,
                "payload": stmt.excluded.payload,
                "attempts": DroppedTaskRow.attempts + 1,
                "dropped_at": stmt.excluded.dropped_at,
                "redriven_at": None,
            },
        )
    )


def publish(conn: Connection, task: str, payload: dict[str, Any], reason: str) -> None:
    """Put a dead letter on the broker (when the database cannot take it)."""
    queue = conn.SimpleQueue(DEAD_LETTER_QUEUE, serializer="json", accept=["json"])
    try:
        queue.put(
            {
                "task": task,
                "payload": payload,
                "reason": reason,
                "at": datetime.now(UTC).isoformat(),
            }
        )
    finally:
        queue.close()


def waiting_on_broker(conn: Connection) -> int:
    """Dead letters on the broker, not yet moved into the table."""
    queue = conn.SimpleQueue(DEAD_LETTER_QUEUE, serializer="json", accept=["json"])
    try:
        return int(queue.qsize())
    except conn.channel_errors:  # the size is read by a passive declare: Redis has no empty list
        return 0
    finally:
        queue.close()


def _subject(task: str, payload: dict[str, Any]) -> tuple[str, datetime] | None:
    """The user a recording task is about and when it was made, read from the raw payload."""
    try:
        if task == RECORD_INTERACTION:
            user, at = payload["interaction"]["user"], payload["interaction"]["at"]
        elif task == RECORD_VOTE:
            user, at = payload["vote"]["rater"], payload["vote"]["at"]
        elif task == WITHDRAW_VOTE:
            user, at = payload["rater"], payload["at"]
        else:
            return None
        return str(user), datetime.fromisoformat(str(at))
    except (KeyError, TypeError, ValueError):
        return None  # the task itself validates it and drops what is malformed


@dataclass(frozen=True)
class Redrive:
    absorbed: int  # dead letters moved from the broker into dropped_tasks
    forgotten: int  # dead letters about a user forgotten since: discarded, never stored
    sent: int  # dead letters sent through the queue again
    exhausted: int  # left waiting: failed more than the automatic attempts allow


def absorb(conn: Connection, engine: Engine, limit: int = 10_000) -> tuple[int, int]:
    """Move dead letters from the broker into ``dropped_tasks``; each message is acknowledged
    only once its row is committed, and put back if that fails. Returns (absorbed, forgotten)."""
    with engine.connect() as db:  # an unreachable database: leave the broker's messages alone
        db.execute(text("SELECT 1"))
    queue = conn.SimpleQueue(DEAD_LETTER_QUEUE, serializer="json", accept=["json"])
    absorbed = forgotten = 0
    try:
        while absorbed + forgotten < limit:
            try:
                message = queue.get(block=False)
            except queue.Empty:
                break
            try:
                body = message.payload
                task, payload = str(body["task"]), dict(body["payload"])
                with session_scope(engine) as s:
                    subject = _subject(task, payload)
                    if subject and forgotten_before(s, *subject):
                        forgotten += 1
                    else:
                        record_failure(s, task, payload, str(body.get("reason", ""))[:300])
                        absorbed += 1
            except Exception:
                message.requeue()
                raise
            message.ack()
    finally:
        queue.close()
    return absorbed, forgotten


def resend(engine: Engine, send: Send, max_attempts: int | None) -> tuple[int, int]:
    """Send the waiting dead letters again (all of them when ``max_attempts`` is None); each is
    then marked and its payload blanked, unless it failed again in the meantime. Returns
    (sent, left waiting as exhausted)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(
                DroppedTaskRow.id,
                DroppedTaskRow.task,
                DroppedTaskRow.payload,
                DroppedTaskRow.attempts,
                DroppedTaskRow.dropped_at,
            )
            .where(DroppedTaskRow.kind == FAILED, DroppedTaskRow.redriven_at.is_(None))
            .order_by(DroppedTaskRow.id)
        ).all()
    sent = exhausted = 0
    for row_id, task, payload, attempts, dropped_at in rows:
        if max_attempts is not None and attempts > max_attempts:
            exhausted += 1
            continue
        send(task, json.loads(payload))
        with session_scope(engine) as s:
            # matched on dropped_at too: a copy that failed again before this commit recorded
            # a new time and stays waiting (sent once more later; the tasks are idempotent)
            s.execute(
                update(DroppedTaskRow)
                .where(
                    DroppedTaskRow.id == row_id,
                    DroppedTaskRow.redriven_at.is_(None),
                    DroppedTaskRow.dropped_at == dropped_at,
                )
                .values(redriven_at=datetime.now(UTC), payload="")
            )
        sent += 1
    return sent, exhausted


def redrive(conn: Connection, engine: Engine, send: Send, max_attempts: int | None) -> Redrive:
    absorbed, forgotten = absorb(conn, engine)
    sent, exhausted = resend(engine, send, max_attempts)
    result = Redrive(absorbed, forgotten, sent, exhausted)
    if absorbed or forgotten or sent or exhausted:
        log.info("redrive: %s", result)
    return result
