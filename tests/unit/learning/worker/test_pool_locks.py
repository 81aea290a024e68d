"""The prefork pool's pipe locks on the embedded default: a pool child SIGKILLed while it waits
for a job (holding the job pipe's lock, as billiard's blocking pool does) must not leave the
lock taken, or its replacement never gets a job and the worker stalls."""

from __future__ import annotations

import os
import signal
import time

import billiard

from learning.worker.pool_locks import ProcessLock, install


def _child_gets(queue, results) -> None:  # type: ignore[no-untyped-def]
    results.put(("got", queue.get()))


def test_a_child_killed_while_waiting_for_a_job_does_not_block_the_next_one() -> None:
    install()
    ctx = billiard.get_context("fork")
    jobs = ctx.SimpleQueue()
    results = ctx.SimpleQueue()
    idle = ctx.Process(target=_child_gets, args=(jobs, results))
    idle.start()
    time.sleep(1.0)  # it now waits in jobs.get(), the read lock taken
    assert idle.pid is not None
    os.kill(idle.pid, signal.SIGKILL)
    idle.join(10)
    replacement = ctx.Process(target=_child_gets, args=(jobs, results))
    replacement.start()
    jobs.put("job")
    try:
        assert results._reader.poll(30), "the replacement child never got the job"
        assert results.get() == ("got", "job")
    finally:
        replacement.join(5)
        if replacement.is_alive() and replacement.pid is not None:
            os.kill(replacement.pid, signal.SIGKILL)
            replacement.join(5)


def _hold(lock: ProcessLock, held) -> None:  # type: ignore[no-untyped-def]
    lock.acquire()
    held.set()
    time.sleep(60)


def test_the_lock_excludes_other_processes_until_its_holder_dies() -> None:
    ctx = billiard.get_context("fork")
    lock = ProcessLock()
    held = ctx.Event()
    holder = ctx.Process(target=_hold, args=(lock, held))
    holder.start()
    assert held.wait(10)
    probe = ctx.Process(target=lock.acquire)
    probe.start()
    probe.join(1.0)
    assert probe.is_alive(), "a second process took a lock that was held"
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    probe.join(10)
    assert probe.exitcode == 0
    holder.join(5)
