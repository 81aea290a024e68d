"""The chaos scenarios on the recording path (issue #23, a-d): each drives real worker
processes through a fault, then holds what was stored against the oracle
(``bench/chaos_oracle.py``) and returns a :class:`Result` for the table in docs/chaos.md.

Sizes are arguments: the CI tests (tests/integration/chaos/) run them small, ``python -m
bench.chaos --full`` at the issue's sizes.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select

from bench.chaos_oracle import (
    PosteriorCheck,
    Script,
    Verdict,
    build_script,
    check_posteriors,
    judge,
    observe,
)
from bench.chaos_servers import PrivatePostgres, PrivateRedis
from bench.chaos_stack import ROOT, Backend, Sender, Worker, settle
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import FAILED, DroppedTaskRow, InteractionRow, VoteRow


@dataclass
class Result:
    scenario: str  # "a".."h"
    title: str
    backend: str
    size: str  # what ran
    pass_figure: str
    measured: str
    passed: bool
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def _progress(db_url: str) -> tuple[int, int, str]:
    """Rows stored and the last vote change: moves whenever the worker records something."""
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            n_i = int(s.scalar(select(func.count()).select_from(InteractionRow)) or 0)
            n_v = int(s.scalar(select(func.count()).select_from(VoteRow)) or 0)
            last = s.scalar(select(func.max(VoteRow.updated_at)))
    finally:
        engine.dispose()
    return n_i, n_v, str(last)


def _wait_progress(db_url: str, since: tuple[int, int, str], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _progress(db_url) != since:
                return True
        except Exception:  # the database is one of the things a scenario takes away
            pass
        time.sleep(0.2)
    return False


def _reconcile_now(backend: Backend) -> None:
    """``thumbloop reconcile``, the operator's command (beat runs the same periodically)."""
    subprocess.run(
        [sys.executable, "-m", "thumbloop", "reconcile"],
        cwd=ROOT,
        env=os.environ | backend.env(),
        check=True,
        capture_output=True,
        timeout=120,
    )


def _finish(
    script: Script, backend: Backend, quiet_s: float, deadline_s: float
) -> tuple[Verdict, float, dict[str, Any]]:
    seen, waited = settle(
        lambda: observe(backend.db_url),
        lambda o: judge(script, o).ok,
        quiet_s=quiet_s,
        deadline_s=deadline_s,
    )
    verdict = judge(script, seen)
    details: dict[str, Any] = {"verdict": asdict(verdict), "settled_s": round(waited, 1)}
    return verdict, waited, details


def _posteriors(
    backend: Backend, wait_s: float, reconcile: bool
) -> tuple[PosteriorCheck | None, PosteriorCheck | None]:
    """(as found once the rows settled, after a reconcile: the command when ``reconcile``, else
    beat's periodic one, waited for up to ``wait_s``)."""
    if backend.redis_url is None:
        return None, None
    url = backend.redis_url
    before = check_posteriors(url, observe(backend.db_url).counts)
    if reconcile:
        _reconcile_now(backend)
        return before, check_posteriors(url, observe(backend.db_url).counts)
    after, _ = settle(
        lambda: check_posteriors(url, observe(backend.db_url).counts),
        lambda c: c.cells_off == 0 and c.below_zero == 0,
        quiet_s=wait_s,
        deadline_s=wait_s,
    )
    return before, after


def _describe(verdict: Verdict, after: PosteriorCheck | None, extra: str = "") -> str:
    text = f"lost {verdict.lost}, extra {verdict.extra}, duplicated {verdict.duplicated}"
    text += f", failed left {verdict.failed_waiting}"
    if after is not None:
        text += f"; posterior cells off {after.cells_off}, below zero {after.below_zero}"
    return text + (f"; {extra}" if extra else "")


def worker_kills(
    backend: Backend,
    n_votes: int,
    n_kills: int,
    seed: int = 1,
    duration_s: float | None = None,
    parents: bool = True,
) -> Result:
    """(a) votes with flips and withdrawals while the worker is SIGKILLed ``n_kills`` times,
    alternately the whole worker (parent and pool child) and its pool child alone; only the
    child with ``parents=False``."""
    begin = time.monotonic()
    script = build_script(n_votes, seed)
    rng = random.Random(seed)
    duration = duration_s or max(10.0, n_kills * 6.0)
    worker = Worker(backend)
    worker.start()
    sender = Sender(backend.broker_url, script.tasks, rate=len(script.tasks) / duration)
    sender.start()
    kills = {"parent": 0, "child": 0, "without_progress": 0}
    try:
        for k in range(n_kills):
            target = begin + (k + 1) * duration / (n_kills + 1) + rng.uniform(-0.5, 0.5)
            time.sleep(max(0.0, target - time.monotonic()))
            # the kill must land on a worker that is consuming, not one still starting
            if not _wait_progress(backend.db_url, _progress(backend.db_url), 60):
                kills["without_progress"] += 1
            time.sleep(rng.uniform(0, 0.3))
            if parents and k % 2 == 0:
                worker.kill_parent()
                kills["parent"] += 1
                worker.start()
            elif worker.kill_child():
                kills["child"] += 1
        sender.join()
        verdict, _, details = _finish(script, backend, quiet_s=30, deadline_s=300)
        before, after = _posteriors(backend, 0, reconcile=True)
    finally:
        worker.stop()
    details |= {"kills": kills, "sent": sender.sent, "tasks": len(script.tasks)}
    if before is not None and after is not None:
        details["posteriors_before_reconcile"] = asdict(before)
        details["posteriors_after_reconcile"] = asdict(after)
    ok = verdict.ok and (after is None or (after.cells_off == 0 and after.below_zero == 0))
    ok = ok and (before is None or before.below_zero == 0)
    return Result(
        "a",
        "worker SIGKILLed during votes, flips and withdrawals",
        backend.name,
        f"{n_votes} votes ({len(script.tasks)} tasks), {kills['parent']} parent + "
        f"{kills['child']} child kills",
        "0 lost, 0 duplicated, posteriors = SQL counts, none below zero",
        _describe(verdict, after),
        ok,
        round(time.monotonic() - begin, 1),
        details,
    )


def duplicate_deliveries(
    backend: Backend, n_votes: int, times: int = 3, workers: int = 4, seed: int = 2
) -> Result:
    """(b) every task delivered ``times`` times, shuffled, to ``workers`` workers at once: the
    stored state and the posteriors (no reconcile) must be what one delivery in order gives."""
    begin = time.monotonic()
    script = build_script(n_votes, seed)
    deliveries = script.delivered(times, seed)
    sender = Sender(backend.broker_url, deliveries)
    sender.run()  # all on the broker first, so the workers race over the copies
    pool = [Worker(backend) for _ in range(workers)]
    for w in pool:
        w.start()
    try:
        verdict, _, details = _finish(script, backend, quiet_s=30, deadline_s=600)
        before, _ = _posteriors(backend, 0, reconcile=False) if backend.redis_url else (None, None)
    finally:
        for w in pool:
            w.stop()
    details |= {"deliveries": len(deliveries)}
    if before is not None:
        details["posteriors"] = asdict(before)
    ok = verdict.ok and (before is None or (before.cells_off == 0 and before.below_zero == 0))
    return Result(
        "b",
        f"every task delivered {times}x, shuffled, to {workers} workers",
        backend.name,
        f"{n_votes} votes ({len(script.tasks)} tasks x {times}), {workers} workers",
        "state identical to one delivery; posteriors = SQL counts without a reconcile",
        _describe(verdict, before),
        ok,
        round(time.monotonic() - begin, 1),
        details,
    )


def redis_pauses(
    backend: Backend,
    server: PrivateRedis,
    n_votes: int,
    pauses: int,
    pause_s: float = 3.0,
    seed: int = 3,
    reconcile_interval_s: float = 5.0,
) -> Result:
    """(c) the private Redis (broker and posteriors) SIGSTOPped ``pauses`` times during the
    votes: beat's periodic reconcile brings the posteriors back to the votes table."""
    begin = time.monotonic()
    script = build_script(n_votes, seed)
    duration = max(10.0, pauses * (pause_s + 2.0))
    worker = Worker(backend, beat=True, THUMBLOOP_RECONCILE_INTERVAL_S=str(reconcile_interval_s))
    worker.start()
    sender = Sender(backend.broker_url, script.tasks, rate=len(script.tasks) / duration)
    sender.start()
    try:
        _wait_progress(backend.db_url, (0, 0, "None"), 60)
        gap = duration / (pauses + 1)
        for _ in range(pauses):
            time.sleep(max(0.0, gap - pause_s))
            server.pause()
            time.sleep(pause_s)
            server.resume()
        sender.join()
        verdict, _, details = _finish(script, backend, quiet_s=30, deadline_s=300)
        before, after = _posteriors(backend, 4 * reconcile_interval_s + 10, reconcile=False)
    finally:
        worker.stop()
    assert before is not None and after is not None
    details |= {
        "posteriors_when_settled": asdict(before),
        "posteriors_after_beat": asdict(after),
        "sender_retries": sender.retries,
    }
    ok = verdict.ok and after.cells_off == 0 and after.below_zero == 0 and before.below_zero == 0
    return Result(
        "c",
        "Redis (broker + posteriors) paused with SIGSTOP during votes",
        backend.name,
        f"{n_votes} votes, {pauses} pauses of {pause_s:.0f} s",
        "posteriors reconcile to SQL (periodic task), none below zero, 0 lost",
        _describe(verdict, after),
        ok,
        round(time.monotonic() - begin, 1),
        details,
    )


def _failed_ever(db_url: str) -> int:
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            n = s.scalar(
                select(func.count())
                .select_from(DroppedTaskRow)
                .where(DroppedTaskRow.kind == FAILED)
            )
    finally:
        engine.dispose()
    return int(n or 0)


def postgres_outage(
    backend: Backend,
    server: PrivatePostgres,
    outage_s: float,
    mode: str = "stopped",
    votes_per_s: float = 5.0,
    before_s: float = 5.0,
    after_s: float = 10.0,
    seed: int = 4,
    redrive_interval_s: float = 10.0,
) -> Result:
    """(d) the private PostgreSQL stopped (an immediate shutdown) or read-only for
    ``outage_s`` while votes arrive at ``votes_per_s``: all stored afterwards and no failed task
    left waiting (retries ride out a short outage; beat re-drives the dead letters of a long
    one)."""
    begin = time.monotonic()
    n_votes = max(10, int(votes_per_s * (before_s + outage_s + after_s)))
    script = build_script(n_votes, seed)
    worker = Worker(
        backend,
        beat=True,
        THUMBLOOP_REDRIVE_INTERVAL_S=str(redrive_interval_s),
        THUMBLOOP_RECONCILE_INTERVAL_S="5",
        # nothing is killed here: the 5 s the kill runs use would hand every task waiting out a
        # retry (up to 60 s) to the worker again as a copy, and copies running out of retries
        # during a long outage burnt their dead letters' attempts (14 left after 3 min)
        THUMBLOOP_VISIBILITY_TIMEOUT_S="150",
    )
    worker.start()
    rate = votes_per_s * len(script.tasks) / n_votes
    sender = Sender(backend.broker_url, script.tasks, rate=rate)
    sender.start()
    try:
        # the worker must be up first: `thumbloop worker` migrates at start, and exits when the
        # database is away then (its supervisor restarts it; that is not what is measured here)
        if not _wait_progress(backend.db_url, (0, 0, "None"), 120):
            raise RuntimeError("the worker stored nothing before the outage")
        time.sleep(before_s)
        if mode == "stopped":
            server.stop("immediate")
            time.sleep(outage_s)
            server.start()
        else:
            server.read_only(True)
            time.sleep(outage_s)
            server.read_only(False)
        back = time.monotonic()
        sender.join()
        verdict, _, details = _finish(
            # a retry waits up to 60 s (the backoff's cap) with nothing changing meanwhile
            script,
            backend,
            quiet_s=max(130.0, 3 * redrive_interval_s),
            deadline_s=900,
        )
        recovered_s = time.monotonic() - back
        _, after = _posteriors(backend, 30, reconcile=False)
        dead = _failed_ever(backend.db_url)
    finally:
        worker.stop()
    details |= {"dead_letters": dead, "recovered_s_after_outage": round(recovered_s, 1)}
    if after is not None:
        details["posteriors"] = asdict(after)
    ok = verdict.ok and (after is None or (after.cells_off == 0 and after.below_zero == 0))
    return Result(
        "d",
        f"PostgreSQL {mode} during votes",
        backend.name,
        f"{outage_s:.0f} s {mode}, {n_votes} votes at {votes_per_s:g}/s",
        "all stored afterwards, 0 failed tasks left",
        _describe(verdict, after, f"{dead} dead letters (re-driven), all in {recovered_s:.0f} s"),
        ok,
        round(time.monotonic() - begin, 1),
        details,
    )
