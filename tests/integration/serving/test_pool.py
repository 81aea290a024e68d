"""Model processes for real: children forked from the preloaded fork server that load the tiny
bundle, answer batches like the in-process model, survive a killed or hung process, refuse a broken
bundle or one whose outputs are NaN, and stop when retired."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from serving.batcher import BatchFailed
from serving.engine import ActiveModel, ModelHolder
from serving.pool import ModelPool, PoolConfig, PoolError, PoolRetired, pool_size
from tests.integration.serving.bundles import corrupt_heads, nan_heads
from thumbloop.model.bundle import load_bundle

TEXTS = ["my card has not arrived yet", "I want to change my PIN", "hi", "top up failed twice"]
CFG = PoolConfig(
    processes=2, threads=1, max_seq_len=64, sub_batch=32, threshold=None, cpu_bf16=False
)


@pytest.fixture(scope="module")
def bundle_dir(tiny_registered) -> Path:  # type: ignore[no-untyped-def]
    return Path(tiny_registered.bundle_dir)


@pytest.fixture
def pool(bundle_dir: Path) -> Iterator[ModelPool]:
    p = ModelPool(bundle_dir, "tiny/1", str(bundle_dir), CFG)
    p.start()
    try:
        yield p
    finally:
        p.close()


def _wait_dead(pids: list[int | None], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    alive = [pid for pid in pids if pid is not None]
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _alive(pid)]
        time.sleep(0.1)
    assert not alive, f"processes {alive} still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_processes_answer_as_the_model_in_this_process(pool: ModelPool, bundle_dir: Path) -> None:
    here = ModelHolder(CFG.max_seq_len, None, CFG.sub_batch)
    here.swap(ActiveModel(load_bundle(bundle_dir, torch.device("cpu")), "tiny/1", "x"))
    expected = here.process(TEXTS)
    for lane in (0, 1):
        got = pool.run(lane, TEXTS)
        assert [o.intent for o in got] == [o.intent for o in expected]
        assert [o.sentiment for o in got] == [o.sentiment for o in expected]
        for g, e in zip(got, expected, strict=True):
            assert g.confidence == pytest.approx(e.confidence, abs=1e-4)
            assert g.version == "tiny/1"
    assert len(set(pool.pids)) == 2 and os.getpid() not in pool.pids


def test_processes_fork_from_a_server_that_has_torch_imported(pool: ModelPool) -> None:
    parents = {int(Path(f"/proc/{pid}/stat").read_text().split()[3]) for pid in pool.pids}
    assert len(parents) == 1 and os.getpid() not in parents  # one fork server, not this process
    server = parents.pop()
    assert "forkserver" in Path(f"/proc/{server}/cmdline").read_bytes().decode(errors="replace")
    # what it preloaded: torch's and transformers' shared objects are mapped in it already
    maps = Path(f"/proc/{server}/maps").read_text()
    assert "libtorch" in maps


def _kill_lane_0(pool: ModelPool) -> tuple[int, threading.Event]:
    """SIGKILL lane 0's process and see its batch fail: its pid, and an event set when the
    pool has tried to start it again."""
    restarts = threading.Event()
    pool._on_restart = restarts.set
    old = pool.pids[0]
    assert old is not None
    os.kill(old, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(BatchFailed, match="model process 0 exited"):
        pool.run(0, TEXTS)
    return old, restarts


def test_a_killed_process_fails_its_batch_and_comes_back(pool: ModelPool) -> None:
    old, restarts = _kill_lane_0(pool)
    assert [o.intent for o in pool.run(1, TEXTS)]  # the other lane never stopped
    got = pool.run(0, TEXTS)  # waits for the new process
    assert len(got) == len(TEXTS) and restarts.wait(5)
    assert pool.pids[0] not in (None, old)


def test_a_bundle_that_cannot_load_is_refused_with_the_childs_error(
    bundle_dir: Path, tmp_path: Path
) -> None:
    broken = corrupt_heads(bundle_dir, tmp_path / "bundle")
    p = ModelPool(broken, "tiny/broken", str(broken), CFG)
    with pytest.raises(PoolError, match="could not load the model"):
        p.start()
    _wait_dead(p.pids)


def test_a_bundle_whose_outputs_are_nan_is_refused_at_warm_up(
    bundle_dir: Path, tmp_path: Path
) -> None:
    nan = nan_heads(bundle_dir, tmp_path / "bundle")
    p = ModelPool(nan, "tiny/nan", str(nan), CFG)
    with pytest.raises(PoolError, match=r"ModelCheckFailed: .* not finite"):
        p.start()
    _wait_dead(p.pids)


# a batch larger than the socket's buffer: its send blocks while the process does not read
BIG_BATCH = [f"{i} " * 4_000 for i in range(64)]


@pytest.mark.parametrize("texts", [TEXTS, BIG_BATCH], ids=["small-batch", "big-batch"])
def test_a_hung_process_fails_its_batch_and_is_replaced(bundle_dir: Path, texts: list[str]) -> None:
    p = ModelPool(bundle_dir, "tiny/1", str(bundle_dir), replace(CFG, batch_timeout_s=2.0))
    p.start()
    hung = p.pids[0]
    assert hung is not None
    try:
        restarts = threading.Event()
        p._on_restart = restarts.set
        os.kill(hung, signal.SIGSTOP)
        failures: list[Exception] = []

        def lane_0() -> None:
            try:
                p.run(0, texts)
            except Exception as exc:
                failures.append(exc)

        waiting = threading.Thread(target=lane_0, daemon=True)
        waiting.start()
        assert [o.intent for o in p.run(1, TEXTS)]  # the other lane answers meanwhile
        waiting.join(60)
        assert not waiting.is_alive(), "the batch on the hung process never ended"
        assert [type(e) for e in failures] == [BatchFailed]
        assert "did not answer within 2 s" in str(failures[0])
        _wait_dead([hung])  # killed, though it was stopped
        assert restarts.wait(60)
        assert p.pids[0] not in (None, hung) and p.working_lanes == 2
        assert len(p.run(0, TEXTS)) == len(TEXTS)  # the new process answers
    finally:
        with suppress(ProcessLookupError):  # a failed test must not leave it stopped
            os.kill(hung, signal.SIGKILL)
        p.close()


class _FailingStarts:
    """A start context whose processes after the first ``fail_from`` fail to start, as when the
    fork server has died."""

    def __init__(self, ctx: Any, fail_from: int) -> None:
        self._ctx, self.fail_from, self.made = ctx, fail_from, 0

    def Pipe(self) -> Any:  # multiprocessing's names
        return self._ctx.Pipe()

    def Process(self, **kwargs: Any) -> Any:
        process = self._ctx.Process(**kwargs)
        self.made += 1
        if self.made > self.fail_from:

            def start() -> None:
                raise EOFError("unexpected EOF")

            process.start = start
        return process


def test_a_process_that_cannot_start_fails_the_pool_and_stops_the_others(
    bundle_dir: Path,
) -> None:
    p = ModelPool(bundle_dir, "tiny/1", str(bundle_dir), CFG)
    p._ctx = _FailingStarts(p._ctx, fail_from=1)
    with pytest.raises(PoolError, match="model process 1 could not start"):
        p.start()
    _wait_dead(p.pids)


def test_a_restart_that_cannot_start_fails_the_lane_fast(pool: ModelPool) -> None:
    pool._ctx = _FailingStarts(pool._ctx, fail_from=0)
    _, restarts = _kill_lane_0(pool)
    assert restarts.wait(10)
    with pytest.raises(BatchFailed, match="could not start"):
        pool.run(0, TEXTS)  # at once, not after start_timeout_s
    assert [o.intent for o in pool.run(1, TEXTS)]


def test_retired_pool_finishes_its_batch_then_stops(pool: ModelPool) -> None:
    long_batch = [f"{t} and then some more words about it {i}" for i in range(16) for t in TEXTS]
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(len(pool.run(0, long_batch))))
    worker.start()
    deadline = time.monotonic() + 5
    while pool._users == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    pool.retire()
    with pytest.raises(PoolRetired):
        pool.run(1, TEXTS)
    worker.join(30)
    assert result == [len(long_batch)]  # the running batch was answered
    _wait_dead(pool.pids)


def test_swapping_the_model_retires_the_old_processes(bundle_dir: Path) -> None:
    holder = ModelHolder(CFG.max_seq_len, None, CFG.sub_batch)
    bundle = load_bundle(bundle_dir, torch.device("cpu"))
    pools = [ModelPool(bundle_dir, f"tiny/{v}", "x", CFG) for v in (1, 2)]
    try:
        for p in pools:
            p.start()
        holder.swap(ActiveModel(bundle, "tiny/1", "x", pool=pools[0]))
        lane = holder.lane(1)
        assert {o.version for _, outs in lane(TEXTS) for o in outs} == {"tiny/1"}
        holder.swap(ActiveModel(bundle, "tiny/2", "x", pool=pools[1]))
        assert {o.version for _, outs in lane(TEXTS) for o in outs} == {"tiny/2"}
        _wait_dead(pools[0].pids)
        assert all(pid is not None and _alive(pid) for pid in pools[1].pids)
    finally:
        for p in pools:
            p.close()


def test_pool_size_defaults() -> None:
    assert pool_size(None, "cpu", cores=2) == 2
    assert pool_size(None, "cpu", cores=16) == 4
    assert pool_size(None, "cpu", cores=1) == 0
    assert pool_size(None, "cuda", cores=16) == 0
    assert pool_size(3, "cpu", cores=2) == 3 and pool_size(0, "cpu", cores=8) == 0
    assert pool_size(2, "cuda") == 0  # a GPU model runs in the server process
