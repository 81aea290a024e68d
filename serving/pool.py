"""Model processes: on a CPU, batches run in N child processes at once, one per batcher lane.

Why processes: on a machine with few cores, one process whose forward pass uses all of them
stalls at every operator when the event loop takes one, and model threads in the server process
share its GIL with the event loop. Processes with one torch thread each keep every core busy
with a batch of their own (``bench/serving.py`` measures both layouts), and a preempted process
delays only its own batch.

A :class:`ModelPool` serves one model version for its whole life; a new version gets a new
pool, started (loaded and warmed in its own processes) while the old one serves, then swapped
in (:class:`serving.engine.ModelHolder`). The old pool is retired: it stops once its last
running batch is done. A process that dies fails only its own batch and is started again in the
background; its lane waits for it. So does a process that hangs (stopped, deadlocked, swapping):
one that has not answered a batch within ``PoolConfig.batch_timeout_s`` is killed, and that batch
fails, instead of its lane waiting forever while the server looks healthy.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from serving.batcher import BatchFailed
from serving.inference import RawOutput, in_input_order, output_chunks, settle_heap, warm_up
from thumbloop.model.bundle import load_bundle

log = logging.getLogger(__name__)

# every process holds its own copy of the model, and more than this were never measured
MAX_AUTO_PROCESSES = 4
# what the fork server imports once, so that a model process starts without importing them
PRELOAD = ["torch", "transformers", "thumbloop.model.bundle", "serving.pool"]


def _start_context() -> Any:
    """Model processes fork from multiprocessing's fork server, a single-threaded process that
    has imported torch and transformers once (``PRELOAD``): a child then starts without an
    interpreter start-up and those imports of its own, which spawn would cost, and a hot swap
    and a process restarted after a crash wait for exactly that; the children also share the
    libraries' pages.
    Plain fork would copy the server's threads and locks. Spawn where there is no fork server."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)  # takes effect when the fork server starts
    return ctx


class PoolError(RuntimeError):
    """The model processes could not start (the message is the child's own error)."""


class PoolRetired(RuntimeError):
    """This pool's model was swapped out before the batch was sent: use the current one."""


class _Hung(Exception):
    """The process did not take or answer a batch in time."""


def _bound_sends(conn: Connection, seconds: float) -> None:
    """Make a send on ``conn`` (one end of a socket pair) that the other end does not read fail
    instead of blocking forever: a batch larger than the socket's buffer blocks its sender while
    a hung process does not read it. Each blocking write gives up after half of ``seconds``
    (EAGAIN); a send is at most two of them (one that fills the buffer, one that finds it still
    full), so it takes at most the whole deadline."""
    sock = socket.socket(fileno=os.dup(conn.fileno()))  # the option is the socket's, not the fd's
    try:
        half = seconds / 2
        timeval = struct.pack("ll", int(half), int((half % 1) * 1_000_000))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
    finally:
        sock.close()


@dataclass(frozen=True)
class PoolConfig:
    processes: int
    threads: int  # torch threads in each process
    max_seq_len: int
    sub_batch: int
    threshold: float | None
    cpu_bf16: bool
    start_timeout_s: float = 300.0
    batch_timeout_s: float = 60.0  # a process that has not answered a batch by then is hung


def pool_size(setting: int | None, device_type: str, cores: int | None = None) -> int:
    """``THUMBLOOP_MODEL_PROCESSES``: as set; by default one per core (at most
    ``MAX_AUTO_PROCESSES``) on a CPU with 2 cores or more, else 0 (the model in the server)."""
    if setting is not None:
        return setting if device_type == "cpu" else 0
    cores = cores if cores is not None else len(os.sched_getaffinity(0))
    return min(cores, MAX_AUTO_PROCESSES) if device_type == "cpu" and cores >= 2 else 0


def _serve(conn: Connection, bundle_dir: str, version: str, cfg: PoolConfig) -> None:
    """A child: load the bundle, warm it up, then answer batches of texts until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    torch.set_num_threads(cfg.threads)
    try:
        bundle = load_bundle(Path(bundle_dir), torch.device("cpu"), cfg.cpu_bf16)
        warm_up(bundle, cfg.max_seq_len)
    except Exception as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    settle_heap()
    conn.send(("ready", os.getpid()))
    while True:
        try:
            texts = conn.recv()
        except (EOFError, OSError):  # the server is gone
            return
        if texts is None:
            return
        try:
            chunks = output_chunks(
                bundle, version, texts, cfg.max_seq_len, cfg.sub_batch, cfg.threshold
            )
            conn.send(("ok", in_input_order(chunks, len(texts))))
        except Exception as exc:  # this batch fails; the process goes on
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


class _Worker:
    def __init__(self, lane: int) -> None:
        self.lane = lane
        self.process: Any = None  # a multiprocessing Process of the pool's start context
        self.conn: Connection | None = None
        self.ready = threading.Event()
        self.error: str | None = None


class ModelPool:
    """``cfg.processes`` processes serving one bundle; lane k's batches run in process k."""

    def __init__(
        self,
        bundle_dir: Path,
        version: str,
        uri: str,
        cfg: PoolConfig,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        if cfg.processes < 1:
            raise ValueError("a pool needs at least one process")
        self.bundle_dir, self.version, self.uri, self.cfg = bundle_dir, version, uri, cfg
        self._on_restart = on_restart
        self._ctx = _start_context()
        self._workers = [_Worker(k) for k in range(cfg.processes)]
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._closed = False

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid if w.process is not None else None for w in self._workers]

    @property
    def working_lanes(self) -> int:
        """Lanes whose process is up (it may still turn out hung); not those whose process is
        starting again or could not be started."""
        return sum(w.ready.is_set() and w.error is None for w in self._workers)

    def start(self) -> None:
        """Start every process and wait until all are warm; on any failure stop them all and
        raise :class:`PoolError` with the child's message."""
        try:
            for w in self._workers:
                self._spawn(w)
            for w in self._workers:
                self._await_ready(w)
        except PoolError:
            self.close()
            raise
        log.info(
            "%s: %d model processes ready (%d torch threads each)",
            self.version,
            len(self._workers),
            self.cfg.threads,
        )

    def _spawn(self, w: _Worker) -> None:
        parent, child = self._ctx.Pipe()
        w.ready.clear()
        w.error = None
        process = self._ctx.Process(
            target=_serve,
            args=(child, str(self.bundle_dir), self.version, self.cfg),
            name=f"thumbloop-model-{w.lane}",
            daemon=True,
        )
        try:
            process.start()
        except Exception as exc:  # e.g. the fork server died or could not preload
            parent.close()
            raise PoolError(f"model process {w.lane} could not start: {exc!r}") from exc
        finally:
            child.close()  # the child holds its end: EOF here when it dies
        _bound_sends(parent, self.cfg.batch_timeout_s)
        w.process, w.conn = process, parent

    def _await_ready(self, w: _Worker) -> None:
        assert w.conn is not None
        try:
            if not w.conn.poll(self.cfg.start_timeout_s):
                raise PoolError(f"model process {w.lane} not ready in {self.cfg.start_timeout_s} s")
            kind, payload = w.conn.recv()
        except (EOFError, OSError) as exc:
            w.process.join(5)
            raise PoolError(
                f"model process {w.lane} exited while loading (code {w.process.exitcode})"
            ) from exc
        if kind != "ready":
            w.process.join(5)
            raise PoolError(f"model process {w.lane} could not load the model: {payload}")
        w.ready.set()

    @contextmanager
    def _use(self) -> Iterator[None]:
        with self._lock:
            if self._retired:
                raise PoolRetired(self.version)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                last = self._retired and self._users == 0
            if last:
                self._close_soon()

    def run(self, lane: int, texts: Sequence[str]) -> list[RawOutput]:
        """One batch in lane ``lane``'s process. A process that died, or did not answer within
        ``batch_timeout_s`` (it is killed), fails this batch and is started again in the
        background; the lane's next batch waits for it."""
        with self._use():
            w = self._workers[lane]
            if not w.ready.wait(self.cfg.start_timeout_s) or w.error or w.conn is None:
                raise BatchFailed(f"model process {lane} is not running: {w.error}")
            timeout = self.cfg.batch_timeout_s
            deadline = time.monotonic() + timeout
            try:
                try:
                    w.conn.send(list(texts))
                except BlockingIOError as exc:  # the socket's send timeout (_bound_sends)
                    raise _Hung from exc
                if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                    raise _Hung
                kind, payload = w.conn.recv()
            except _Hung as exc:
                w.process.kill()  # SIGKILL ends a stopped process too
                w.process.join(5)
                self._restart(w, "did not answer in time")
                raise BatchFailed(
                    f"model process {lane} did not answer within {timeout:g} s; "
                    "it was killed and is starting again"
                ) from exc
            except (EOFError, OSError) as exc:
                w.process.join(1)
                code = w.process.exitcode
                self._restart(w, "died")
                raise BatchFailed(f"model process {lane} exited (code {code})") from exc
            if kind != "ok":
                raise BatchFailed(f"inference failed: {payload}")
            outputs: list[RawOutput] = payload
            return outputs

    def _restart(self, w: _Worker, why: str) -> None:
        w.ready.clear()
        if w.conn is not None:
            w.conn.close()
            w.conn = None
        log.error("model process %d of %s %s; starting it again", w.lane, self.version, why)

        def again() -> None:
            try:
                self._spawn(w)
                self._await_ready(w)
                log.info("model process %d of %s is back", w.lane, self.version)
            except PoolError as exc:
                log.error("%s", exc)
                w.error = str(exc)
                w.ready.set()  # the lane fails its batches fast instead of waiting
            if self._closed:  # closed while this one started: it is not the pool's any more
                self._stop_worker(w)
            if self._on_restart:
                self._on_restart()

        threading.Thread(target=again, name=f"restart-model-{w.lane}", daemon=True).start()

    def retire(self) -> None:
        """No new batches; stop once the running ones are done."""
        with self._lock:
            self._retired = True
            idle = self._users == 0
        if idle:
            self._close_soon()

    def _close_soon(self) -> None:
        """Close without holding up the caller (the event loop, or a lane with work)."""
        threading.Thread(target=self.close, name="close-model-pool", daemon=True).start()

    def close(self) -> None:
        """Stop every process (each finishes the batch it is running first)."""
        with self._lock:
            if self._closed:
                return
            self._closed = self._retired = True
        for w in self._workers:
            if w.conn is not None:
                with suppress(OSError):
                    w.conn.send(None)
        for w in self._workers:
            self._stop_worker(w)

    @staticmethod
    def _stop_worker(w: _Worker) -> None:
        if w.process is not None:
            w.process.join(10)
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
        if w.conn is not None:
            w.conn.close()
            w.conn = None
