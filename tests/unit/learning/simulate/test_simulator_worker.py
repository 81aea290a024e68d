"""The simulator stops its Celery worker even when the worker ignores SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

from learning.simulate.run import _stop_worker

STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def _spawn(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_a_worker_ignoring_sigterm_is_killed_after_the_grace() -> None:
    proc = _spawn(STUBBORN)
    _stop_worker(proc, grace_s=0.5)
    assert proc.returncode == -signal.SIGKILL


def test_a_worker_that_stops_on_sigterm_is_not_killed() -> None:
    proc = _spawn("import time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    _stop_worker(proc, grace_s=10)
    assert proc.returncode == -signal.SIGTERM
    _stop_worker(proc)  # already gone: nothing to do
