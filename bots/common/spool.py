"""A small SQLite file of items a bot still owes: written before the bot says it has them,
deleted once they are done, read back by the next run when a process died in between.

The outbox (:mod:`bots.common.outbox`) keeps learning tasks the broker has not taken yet; the
inboxes keep what the platform counts as delivered but the bot has not handled yet: Telegram's
updates (:mod:`bots.telegram.inbox`) and Slack's requests (:mod:`bots.slack.inbox`). Rows hold
users' messages, so a deleted row is overwritten and the write-ahead log is emptied whenever
nothing is owed.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
from pathlib import Path
from typing import Any


def spool_path(home: Path, platform: str, kind: str = "outbox") -> Path:
    """Where a bot keeps what it owes: one file per platform and kind (``outbox``: unsent
    tasks; ``inbox``: unhandled updates) under the Thumbloop home."""
    return home / kind / f"{platform}.sqlite"


class Spool:
    """Items on disk, one row each, in the order they were added (a bot's outbox of tasks, or
    its inbox of platform updates).

    One process owns a spool file at a time (an exclusive ``flock`` on a lock file beside it,
    released by the kernel when the process dies). A second bot on the same home and platform
    takes the next free slot (``telegram-1.sqlite``, ...) instead of sending the first one's
    rows twice; whoever starts later on a free slot sends what a dead owner left there."""

    SLOTS = 16

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        for slot in range(self.SLOTS):
            candidate = path if slot == 0 else path.with_stem(f"{path.stem}-{slot}")
            lock = candidate.with_name(candidate.name + ".lock").open("a")
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.close()
                continue
            self.path, self._lock = candidate, lock
            break
        else:
            raise RuntimeError(f"all {self.SLOTS} spools beside {path} are in use")
        # used from the bot's event loop only, which may not be the thread that built it
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # survives a process crash, not power loss
        # rows hold users' messages: overwrite them when deleted, so no copy lingers in the file
        self._db.execute("PRAGMA secure_delete=ON")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox "
            "(id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, kwargs TEXT NOT NULL)"
        )

    def load(self) -> list[tuple[int, str, dict[str, Any]]]:
        rows = self._db.execute("SELECT id, name, kwargs FROM outbox ORDER BY id").fetchall()
        return [(int(i), str(n), json.loads(k)) for i, n, k in rows]

    def add(self, name: str, kwargs: dict[str, Any]) -> int:
        cur = self._db.execute(
            "INSERT INTO outbox (name, kwargs) VALUES (?, ?)", (name, json.dumps(kwargs))
        )
        return int(cur.lastrowid or 0)

    def remove(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def compact(self) -> None:
        """Fold the write-ahead log into the file and empty it. ``secure_delete`` overwrites a
        deleted row in the database file, but the log still holds the frames that wrote it (a
        user's message) until a checkpoint: called whenever the line is empty, so nothing sent
        stays on disk."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.compact()
        self._db.close()
        self._lock.close()


__all__ = ["Spool", "spool_path"]
