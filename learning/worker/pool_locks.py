"""Locks of the prefork pool's pipes that die with the process holding them.

On a broker without an event loop (the embedded SQLite broker) Celery runs billiard's blocking
pool: the children share one job pipe and one result pipe, each guarded by a process-shared
semaphore. An idle child waits for its next job *holding* the job pipe's lock, so a child
SIGKILLed while idle (or while writing a result) leaves the lock taken for ever: its
replacement waits on it, no task runs again, and the worker stalls with its reserved tasks
(docs/chaos.md). Here those locks are ``flock`` locks on a file that each process opens for
itself, which the kernel releases when the holder dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
import threading
import weakref
from typing import Any

from billiard import queues


def _unlink(path: str, creator: int) -> None:
    if os.getpid() == creator:  # a forked child inherits the finalizer, not the file
        with contextlib.suppress(OSError):
            os.unlink(path)


class ProcessLock:
    """An exclusive lock between processes and the threads of each, released by the kernel
    when its holder dies. Blocks until taken (billiard takes these locks without a timeout)."""

    def __init__(self) -> None:
        fd, path = tempfile.mkstemp(prefix="thumbloop-pool-", suffix=".lock")
        proc = f"/proc/{os.getpid()}/fd"
        if os.path.isdir(proc):
            # Linux: no file left behind, even by a SIGKILLed worker: the file lives while this
            # process holds it open, and the others open it through /proc
            os.unlink(path)
            self._keep = fd
            self.path = f"{proc}/{fd}"
        else:
            os.close(fd)
            self.path = path
            weakref.finalize(self, _unlink, path, os.getpid())
        self._pid = -1
        self._fd = -1
        self._threads = threading.Lock()

    def _here(self) -> int:
        if self._pid != os.getpid():
            # a forked process opens the file itself: a lock on a description it shares with its
            # parent would not exclude the parent, nor be released when it dies
            self._fd = os.open(self.path, os.O_RDWR)
            self._threads = threading.Lock()  # a copy taken at the fork would never be released
            self._pid = os.getpid()
        return self._fd

    def acquire(self, block: bool = True, timeout: float | None = None) -> bool:
        fd = self._here()
        self._threads.acquire()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __getstate__(self) -> dict[str, Any]:  # a spawned child opens the same file
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path, self._pid, self._fd = state["path"], -1, -1
        self._threads = threading.Lock()


_installed = False


def install() -> None:
    """Give every billiard ``SimpleQueue`` made from now on in this process such locks."""
    global _installed
    if _installed or sys.platform == "win32":
        return
    original = queues.SimpleQueue.__init__

    def __init__(self: queues.SimpleQueue, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._rlock = ProcessLock()
        self._wlock = ProcessLock()

    queues.SimpleQueue.__init__ = __init__  # type: ignore[method-assign]
    _installed = True
