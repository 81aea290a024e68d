"""Chaos scenario (h): the champion alias moved between good and broken versions, with one
MLflow outage, while serving answers.

A real ``mlflow server`` (SQLite store) behind a proxy that can answer 503, six registered
versions (two good, one with its weights cut in half, one without a bundle, one whose outputs
are NaN, one whose gate failed) and a real ``thumbloop serve`` following ``@champion`` through
the proxy, under a closed loop of requests. The alias moves every ``every_s`` seconds; while
it moves to a good version the proxy answers 503 for ``outage_s``. Pass figure: every answer
200, only the good versions ever answer, and the version the outage hid is served once it ends
(the failed load retried).
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from bench.chaos_scenarios import Result
from bench.chaos_serving import TEXTS, _free_port, _wait
from bench.chaos_stack import ROOT

NAME = "chaos-alias"


class Flaky(ThreadingHTTPServer):
    """Forwards to ``upstream``; answers 503 while ``down_until`` is in the future."""

    def __init__(self, port: int, upstream: int) -> None:
        self.upstream, self.down_until, self.refused = upstream, 0.0, 0
        super().__init__(("127.0.0.1", port), _Forward)


class _Forward(BaseHTTPRequestHandler):
    server: Flaky

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if time.monotonic() < self.server.down_until:
            self.server.refused += 1
            self._answer(503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}', "application/json")
            return
        conn = http.client.HTTPConnection("127.0.0.1", self.server.upstream, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(self.command, self.path, body=body or None, headers=headers)
        r = conn.getresponse()
        self._answer(r.status, r.read(), r.getheader("Content-Type") or "application/json")
        conn.close()

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any


def _broken_copies(bundle_dir: Path, root: Path) -> dict[str, Path]:
    """Bundles that must never serve: weights cut in half, no bundle at all, NaN outputs."""
    import torch
    from safetensors.torch import load_file, save_file

    truncated = shutil.copytree(bundle_dir, root / "truncated")
    heads = truncated / "heads.safetensors"
    heads.write_bytes(heads.read_bytes()[: heads.stat().st_size // 2])
    empty = root / "bundle-less"
    empty.mkdir()
    (empty / "README.txt").write_text("no bundle here\n")
    nan = shutil.copytree(bundle_dir, root / "nan")
    state = load_file(str(nan / "heads.safetensors"))
    state = {k: torch.full_like(v, float("nan")) if "intent" in k else v for k, v in state.items()}
    save_file(state, str(nan / "heads.safetensors"))
    return {"truncated": truncated, "bundle-less": empty, "nan": nan}


class Answers(threading.Thread):
    """Closed-loop clients: (status, model version) of every answer."""

    def __init__(self, url: str, clients: int) -> None:
        super().__init__(daemon=True)
        self.url, self.clients = url, clients
        self.seen: list[tuple[int, str]] = []
        self.stop = threading.Event()

    def _client(self, k: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as http:
            while not self.stop.is_set():
                try:
                    r = http.post("/v1/predict", json={"text": TEXTS[k % len(TEXTS)]})
                    version = r.json().get("model_version", "") if r.status_code == 200 else ""
                    self.seen.append((r.status_code, version))
                except httpx.HTTPError:
                    self.seen.append((0, ""))

    def run(self) -> None:
        threads = [threading.Thread(target=self._client, args=(k,)) for k in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def alias_moves(
    bundle_dir: Path, every_s: float = 5.0, outage_s: float = 4.0, clients: int = 2
) -> Result:
    from mlflow import MlflowClient

    from learning.registry.versions import log_and_register
    from thumbloop.settings import Settings

    begin = time.monotonic()
    home = Path(tempfile.mkdtemp(prefix="chaos-alias-"))
    store = f"sqlite:///{home}/mlflow.db"
    settings = Settings(
        home=home, model_name=NAME, mlflow_tracking_uri=store, mlflow_artifact_root=str(home / "a")
    )
    settings.ensure_home()
    versions: dict[str, str] = {}

    def register(label: str, path: Path, tags: dict[str, str], first: bool = False) -> None:
        done = log_and_register(
            settings,
            path,
            params={},
            metrics={},
            artifacts={},
            dicts={},
            tags=tags,
            set_champion_if_missing=first,
        )
        versions[label] = done.version

    passed = {"kind": "retrain", "gate": "passed"}
    register("good seed", bundle_dir, {"kind": "seed"}, first=True)
    register("good retrain", bundle_dir, passed)
    for label, path in _broken_copies(bundle_dir, home).items():
        register(label, path, passed)
    register("gate failed", bundle_dir, {"kind": "retrain", "gate": "failed"})
    registry = MlflowClient(store, store)
    good = {f"{NAME}/{versions['good seed']}", f"{NAME}/{versions['good retrain']}"}

    mlflow_port, proxy_port, serve_port = _free_port(), _free_port(), _free_port()
    mlflow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            store,
            "--default-artifact-root",
            str(home / "a"),
            "--host",
            "127.0.0.1",
            "--port",
            str(mlflow_port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    proxy = Flaky(proxy_port, mlflow_port)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    env = os.environ | {
        "THUMBLOOP_HOME": str(home / "serving"),
        "THUMBLOOP_DEVICE": "cpu",
        "THUMBLOOP_MODEL_NAME": NAME,
        "THUMBLOOP_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{proxy_port}",
        "THUMBLOOP_WATCH_INTERVAL_S": "0.5",
        "THUMBLOOP_MODEL_PROCESSES": "0",
        # MLflow's client retries a 503 itself for minutes by default: here the watcher must
        # see the outage, so its own retry is what is under test
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    url = f"http://127.0.0.1:{serve_port}"
    log = home / "serve.log"
    server: subprocess.Popen[bytes] | None = None
    answers = Answers(url, clients)
    timeline: list[dict[str, Any]] = []
    loads: dict[str, float] = {}
    try:
        if not _wait(lambda: _ok(f"http://127.0.0.1:{mlflow_port}/health"), 120):
            raise RuntimeError("mlflow server did not start")
        with log.open("wb") as out:
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "thumbloop",
                    "serve",
                    "--model",
                    f"models:/{NAME}@champion",
                    "--port",
                    str(serve_port),
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
            )
        if not _wait(lambda: _ok(f"{url}/readyz"), 180):
            raise RuntimeError(f"serving did not start: {log.read_text()[-2000:]}")
        answers.start()
        plan = ["truncated", "good retrain", "bundle-less", "nan", "good seed", "gate failed"]
        plan += ["good retrain"]
        for label in plan:
            time.sleep(every_s)
            outage = label == "good seed"  # the move an MLflow outage hides
            if outage:
                proxy.down_until = time.monotonic() + outage_s
            registry.set_registered_model_alias(NAME, "champion", versions[label])
            timeline.append({"to": label, "version": versions[label], "outage": outage})
            if outage:  # it must be served once the outage is over, the failed load retried
                wanted = f"{NAME}/{versions[label]}"
                got = _wait(lambda w=wanted: _serving(url) == w, outage_s + 20)  # type: ignore[misc]
                timeline[-1]["served_after_outage"] = got
        _wait(lambda: _serving(url) == f"{NAME}/{versions['good retrain']}", 30)
        time.sleep(1.0)
        loads = _loads(url)
    finally:
        answers.stop.set()
        answers.join(60)
        if server is not None:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
        proxy.shutdown()
        os.killpg(mlflow.pid, signal.SIGTERM)
        mlflow.wait(20)
    statuses = Counter(s for s, _ in answers.seen)
    served = Counter(v for s, v in answers.seen if s == 200)
    retried = any(t.get("served_after_outage") for t in timeline)
    # the three broken bundles were tried and failed their load; the failed gate was not loaded
    tried = loads.get("failed", 0) >= 3 and loads.get("refused", 0) >= 1
    ok = set(statuses) == {200} and set(served) <= good and retried and proxy.refused > 0 and tried
    return Result(
        "h",
        "the alias moved between good and broken versions, one MLflow outage",
        "serving",
        f"{len(timeline)} moves every {every_s:g} s (truncated, bundle-less, NaN, gate-failed "
        f"and good versions), MLflow answering 503 for {outage_s:g} s once",
        "0 non-200 answers, bad versions never served, the transient failure retried",
        f"{len(answers.seen)} answers {dict(statuses)}; served {dict(served)}; "
        f"{proxy.refused} registry calls refused with 503; loads {loads}; the hidden version "
        f"served after the outage: {retried}",
        ok,
        round(time.monotonic() - begin, 1),
        {"versions": versions, "timeline": timeline, "served": dict(served), "loads": loads},
    )


def _loads(url: str) -> dict[str, float]:
    """``thumbloop_model_loads_total`` by result, from serving's /metrics."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith("thumbloop_model_loads_total{"):
            label, value = line.split("}", 1)
            out[label.split('"')[1]] = float(value)
    return out


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _serving(url: str) -> str:
    try:
        r = httpx.get(f"{url}/readyz", timeout=2)
        return str(r.json().get("version", "")) if r.status_code == 200 else ""
    except (httpx.HTTPError, ValueError):
        return ""
