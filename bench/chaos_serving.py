"""Chaos scenario (e): serving's model processes killed and stopped under load.

A real ``thumbloop serve`` with two model processes (lanes) answers a closed loop of
``/v1/predict`` from a few clients while the run SIGKILLs a model process every ``every_s``
seconds, then SIGSTOPs one for ``stop_s`` seconds, then stops both for a moment (no lane works).
``/readyz`` is polled throughout. Pass figure: at most one batch lost per fault (a batch is at
most ``clients`` requests here), the stopped process detected as hung and replaced, ``/readyz``
503 while no lane works and 200 again after, and nothing but 200 outside the faults' batches.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

import httpx

from bench.chaos_scenarios import Result
from bench.chaos_stack import ROOT

TEXTS = ["where is my card", "I was charged twice", "how do I top up", "what is the rate"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pgrep_children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _children(pid: int) -> list[int]:
    """The server's model processes: its children, or (serving starts them from a forkserver,
    whose children carry its command line) the forkserver's; the resource tracker left out."""
    kids = []
    for child in _pgrep_children(pid):
        with suppress(OSError):
            cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            if b"forkserver" in cmd:
                kids += _pgrep_children(child)
            elif b"resource_tracker" not in cmd:
                kids.append(child)
    return sorted(kids)


class Load(threading.Thread):
    """``clients`` closed-loop clients; every answer's (time, status), 0 for a transport error."""

    def __init__(self, url: str, clients: int) -> None:
        super().__init__(daemon=True)
        self.url, self.clients = url, clients
        self.answers: list[tuple[float, int]] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def _client(self, k: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            i = 0
            while not self.stop.is_set():
                body = {"text": TEXTS[(k + i) % len(TEXTS)], "conversation_id": f"chaos-{k}"}
                try:
                    status = http.post("/v1/predict", json=body).status_code
                except httpx.HTTPError:
                    status = 0
                with self._lock:
                    self.answers.append((time.monotonic(), status))
                i += 1

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(k,)) for k in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


class Ready(threading.Thread):
    """Polls /readyz every 0.2 s: (time, status)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as http:
            while not self.stop.is_set():
                try:
                    status = http.get("/readyz").status_code
                except httpx.HTTPError:
                    status = 0
                self.seen.append((time.monotonic(), status))
                time.sleep(0.2)


def _wait(predicate: object, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def model_process_faults(
    bundle_dir: Path,
    kills: int = 3,
    every_s: float = 4.0,
    stop_s: float = 6.0,
    hang_timeout_s: float = 2.0,
    clients: int = 4,
) -> Result:
    begin = time.monotonic()
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="chaos-serving-"))
    env = os.environ | {
        "THUMBLOOP_HOME": str(home),
        "THUMBLOOP_DEVICE": "cpu",
        "THUMBLOOP_MODEL_PROCESSES": "2",
        "THUMBLOOP_MODEL_BATCH_TIMEOUT_S": str(hang_timeout_s),
    }
    log = home / "serve.log"
    cmd = [sys.executable, "-m", "thumbloop", "serve", "--model", str(bundle_dir)]
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    faults: list[tuple[str, float, float]] = []  # (what, began, ended)
    details: dict[str, object] = {}
    load, ready = Load(url, clients), Ready(url)
    try:

        def is_ready() -> bool:
            with suppress(httpx.HTTPError):
                return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
            return False

        if not _wait(is_ready, 180):
            raise RuntimeError(f"serving did not start: {log.read_text()[-2000:]}")
        load.start()
        ready.start()
        time.sleep(1.0)
        for _ in range(kills):  # (1) a model process SIGKILLed every every_s
            lanes = _children(server.pid)
            t = time.monotonic()
            os.kill(lanes[0], signal.SIGKILL)
            _wait(lambda: len(_children(server.pid)) == 2, 60)  # started again
            faults.append(("kill", t, time.monotonic()))
            time.sleep(max(0.0, every_s - (time.monotonic() - t)))
        _wait(is_ready, 60)
        # (2) one stopped for stop_s: the pool takes it for hung and replaces it
        stopped = _children(server.pid)[0]
        t = time.monotonic()
        os.kill(stopped, signal.SIGSTOP)
        replaced = _wait(lambda: stopped not in _children(server.pid), stop_s + hang_timeout_s)
        time.sleep(max(0.0, stop_s - (time.monotonic() - t)))
        with suppress(ProcessLookupError):
            os.kill(stopped, signal.SIGCONT)
        faults.append(("stop", t, time.monotonic()))
        details["stopped_process_replaced"] = replaced
        _wait(lambda: len(_children(server.pid)) == 2 and is_ready(), 60)
        # (3) both stopped: no lane works, /readyz must say so, then come back
        t = time.monotonic()
        both = _children(server.pid)
        for pid in both:
            os.kill(pid, signal.SIGSTOP)
        said_503 = _wait(
            lambda: any(s == 503 and at > t for at, s in list(ready.seen)), hang_timeout_s + 15
        )
        for pid in both:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        back = _wait(is_ready, 60)
        faults.append(("stop all", t, time.monotonic()))
        details |= {"readyz_503_with_no_lane": said_503, "ready_again": back}
        time.sleep(1.0)
    finally:
        load.stop.set()
        ready.stop.set()
        load.join(60)
        ready.join(10)
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    statuses = Counter(s for _, s in load.answers)
    # a failed batch is answered by the time the fault is over (hang: after the timeout)
    failed = [
        (what, sum(1 for at, s in load.answers if t0 <= at <= t1 + 1.0 and s != 200), t1 - t0)
        for what, t0, t1 in faults
    ]
    outside = sum(1 for _, s in load.answers if s != 200) - sum(n for _, n, _ in failed)
    worst = max((n for what, n, _ in failed if what != "stop all"), default=0)
    per_fault = [{"fault": w, "failed": n, "seconds": round(d, 1)} for w, n, d in failed]
    ok = (
        worst <= clients
        and outside <= 0
        and bool(details.get("stopped_process_replaced"))
        and bool(details.get("readyz_503_with_no_lane"))
        and bool(details.get("ready_again"))
        and set(statuses) <= {200, 500, 503, 504}
    )
    details |= {"statuses": dict(statuses), "per_fault": per_fault, "outside_faults": outside}
    return Result(
        "e",
        "model processes SIGKILLed and SIGSTOPped under load",
        "serving",
        f"{kills} kills every {every_s:g} s, one stopped {stop_s:g} s, then both; 2 lanes, "
        f"{clients} clients, hang timeout {hang_timeout_s:g} s, model {bundle_dir.name}",
        "at most one batch lost per fault, the hang detected, /readyz 503 while no lane works",
        f"{len(load.answers)} answers {dict(statuses)}; worst fault lost {worst} "
        f"(batch <= {clients}); hang replaced {details.get('stopped_process_replaced')}; "
        f"/readyz 503 with no lane {details.get('readyz_503_with_no_lane')}, ready again "
        f"{details.get('ready_again')}",
        ok,
        round(time.monotonic() - begin, 1),
        details,
    )


class Probe(threading.Thread):
    """One request every 0.1 s: (wall time, status, seconds), status 0 for a transport error."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: list[tuple[float, int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                t = time.time()
                try:
                    status = http.post("/v1/predict", json={"text": TEXTS[0]}).status_code
                except httpx.HTTPError:
                    status = 0
                self.seen.append((t, status, time.time() - t))
                time.sleep(0.1)


def recovery_seconds(
    probes: list[tuple[float, int, float]], end: float, slow: float
) -> float | None:
    """Seconds after ``end`` until every later probe answered 200 within ``slow`` seconds (None:
    never, or no probe after it)."""
    after = [(t, s, d) for t, s, d in probes if t >= end]
    if not after:
        return None
    recovered: float | None = None  # the first probe of the good run that lasts to the end
    for t, s, d in after:
        good = s == 200 and d <= slow
        recovered = (recovered or t) if good else None
    return None if recovered is None else max(0.0, recovered - end)


def overload(
    bundle_dir: Path, seconds: float = 10.0, factor: float = 3.0, recovery_s: float = 5.0
) -> Result:
    """(f) ``factor`` x the server's measured capacity, open loop, for ``seconds``."""
    from bench.harness import load

    begin = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="chaos-overload-"))
    texts = home / "texts.txt"
    texts.write_text("\n".join(TEXTS * 50), encoding="utf-8")
    port = _free_port()
    env = os.environ | {"THUMBLOOP_HOME": str(home), "THUMBLOOP_DEVICE": "cpu"}
    cmd = [sys.executable, "-m", "thumbloop", "serve", "--model", str(bundle_dir)]
    with (home / "serve.log").open("wb") as out:
        server = subprocess.Popen(
            [*cmd, "--port", str(port)], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    probe = Probe(url)
    try:
        if not _wait(lambda: _get(f"{url}/readyz") == 200, 180):
            raise RuntimeError(f"serving did not start: {(home / 'serve.log').read_text()[-2000:]}")
        capacity = load(url, 32, 3.0, texts)
        probe.start()
        time.sleep(2.0)  # the baseline: probes alone
        gen = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.openloop",
                "--url",
                url,
                "--rate",
                str(factor * capacity["throughput_rps"]),
                "--seconds",
                str(seconds),
                "--texts",
                str(texts),
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        )
        sent = json.loads(gen.stdout.strip().splitlines()[-1])
        time.sleep(recovery_s + 2.0)
    finally:
        probe.stop.set()
        probe.join(40)
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
    start, end = sent["began_at"], sent["began_at"] + sent["sent_for_s"]
    base = sorted(d for t, s, d in probe.seen if t < start and s == 200)
    p50 = base[len(base) // 2] if base else 0.05
    slow = max(3 * p50, 0.1)
    recovered = recovery_seconds(probe.seen, end, slow)
    during = Counter(s for t, s, _ in probe.seen if start <= t <= end)
    statuses = {int(k): v for k, v in sent["statuses"].items()}
    allowed = {200, 503, 504}
    ok = (
        set(statuses) <= allowed
        and set(during) <= allowed
        and sent["transport_errors"] == 0
        and sent["unanswered"] == 0
        and recovered is not None
        and recovered <= recovery_s
    )
    rate = sent["rate_sent"] / capacity["throughput_rps"]
    return Result(
        "f",
        f"{factor:g}x overload",
        "serving",
        f"{seconds:g} s at {sent['rate_sent']:.0f} req/s ({rate:.1f}x the measured "
        f"{capacity['throughput_rps']:.0f}), model {bundle_dir.name}",
        f"only 200/503/504, recovery within {recovery_s:g} s",
        f"{sent['sent']} sent: {statuses}, {sent['transport_errors']} transport errors, "
        f"{sent['unanswered']} unanswered; probes during {dict(during)}; recovered in "
        f"{'never' if recovered is None else f'{recovered:.1f} s'} "
        f"(200 within {slow * 1000:.0f} ms)",
        ok,
        round(time.monotonic() - begin, 1),
        {"load": sent, "capacity": capacity, "baseline_p50_s": p50, "recovery_s": recovered},
    )


def _get(url: str) -> int:
    with suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code
    return 0
