"""The Telegram inbox: an update is on disk before it enters PTB's queue, and leaves the disk
only once handled; what a dead run left is there for the next one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from telegram import Update

from bots.common.spool import Spool, spool_path
from bots.telegram.inbox import DurableUpdateQueue


def _update(update_id: int, text: str) -> Update:
    return Update.de_json(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": 7, "type": "private"},
                "from": {"id": 7, "is_bot": False, "first_name": "Ada"},
                "text": text,
            },
        },
        None,
    )


def _rows(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        return [int(row_id) for (row_id,) in db.execute("SELECT id FROM outbox")]


def test_an_update_is_on_disk_before_it_is_queued_and_gone_once_handled(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "telegram", "inbox")
    queue = DurableUpdateQueue(Spool(path))

    async def go() -> None:
        await queue.put(_update(1, "first"))
        await queue.put(_update(2, "second"))
        assert len(_rows(path)) == 2 and queue.pending == 2
        handled = await queue.get()
        assert isinstance(handled, Update) and handled.update_id == 1
        queue.handled(handled)
        assert len(_rows(path)) == 1 and queue.pending == 1

    asyncio.run(go())
    queue.close()  # the second was never handled: it stays for the next run

    again = DurableUpdateQueue(Spool(path))
    try:
        assert [(data["update_id"], data["message"]["text"]) for _, _, data in again.left] == [
            (2, "second")
        ]
    finally:
        again.close()


def test_nothing_of_a_handled_message_stays_in_the_files(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "telegram", "inbox")
    queue = DurableUpdateQueue(Spool(path))

    async def go() -> None:
        await queue.put(_update(1, "canary-7c1e my account number"))
        update = await queue.get()
        assert isinstance(update, Update)
        queue.handled(update)

    asyncio.run(go())
    try:
        for file in path.parent.iterdir():
            assert b"canary-7c1e" not in file.read_bytes(), file.name
    finally:
        queue.close()


def test_other_objects_pass_through_without_being_spooled(tmp_path: Path) -> None:
    """PTB puts non-updates in its queue too (its stop marker): they are not Telegram's."""
    path = spool_path(tmp_path, "telegram", "inbox")
    queue = DurableUpdateQueue(Spool(path))
    try:
        queue.put_nowait("stop")
        assert queue.get_nowait() == "stop" and _rows(path) == []
    finally:
        queue.close()


def test_an_update_whose_id_is_not_an_integer_is_queued_but_not_spooled(tmp_path: Path) -> None:
    path = spool_path(tmp_path, "telegram", "inbox")
    queue = DurableUpdateQueue(Spool(path))
    odd = Update.de_json({"update_id": {}}, None)
    try:
        queue.put_nowait(odd)
        got = queue.get_nowait()
        assert got is odd and _rows(path) == []
        queue.handled(odd)  # nothing to delete, nothing raised
    finally:
        queue.close()
