"""What the benchmarks share: the repository root, the settings' defaults, a server started as a
subprocess, closed-loop load against it (bench/loadgen.py) and the model to measure.

Kept apart from the benchmarks themselves so that each imports this and none imports another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from serving.model_source import resolve
from thumbloop.settings import Settings

ROOT = Path(__file__).resolve().parents[1]

DEFAULTS = {name: field.default for name, field in Settings.fields().items()}


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} not ready after {timeout} s")


@contextmanager
def server(cmd: list[str], port: int, env: dict[str, str]) -> Iterator[str]:
    log = Path(tempfile.mkstemp(prefix="bench-server-", suffix=".log")[1])
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, env=os.environ | env, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        yield url
    except RuntimeError:
        print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def load(url: str, concurrency: int, seconds: float, texts_file: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/loadgen.py"),
            "--url",
            url,
            "--concurrency",
            str(concurrency),
            "--seconds",
            str(seconds),
            "--texts",
            str(texts_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def resolve_bundle(model: str | None) -> Path:
    settings = Settings()
    try:
        return resolve(
            model or settings.model_uri, settings.effective_tracking_uri, settings.home / "models"
        ).bundle_dir
    except Exception as exc:
        raise SystemExit(
            f"no model to benchmark ({exc}); train one first: thumbloop train"
        ) from exc
