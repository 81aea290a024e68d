"""The embedded broker survives processes that create the same queue at the same moment (a
worker starting while the producer sends its first task: kombu's own check-then-insert is only
guarded within one process, and the loser's IntegrityError stopped the worker)."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from kombu import Connection

from learning.worker.embedded_broker import install


def _declare(url: str, names: list[str], start: mp.synchronize.Barrier) -> None:  # type: ignore[name-defined]
    install()
    with Connection(url) as conn:
        channel = conn.default_channel
        start.wait()
        for name in names:
            channel._new_queue(name)


def test_two_processes_declaring_the_same_queues_both_succeed(tmp_path: Path) -> None:
    url = f"sqla+sqlite:///{tmp_path / 'broker.sqlite'}"
    install()
    with Connection(url) as conn:
        conn.default_channel._new_queue("warm-up")  # the tables exist before the race
    names = [f"q{i}" for i in range(150)]
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_declare, args=(url, names, start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
