"""`thumbloop up`'s supervisor stops its processes however it is told to stop: SIGHUP (the
terminal went away), SIGTERM, or its output closing (`make run | tee log` after tee exited)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

# `up` with two long-running children, as honcho runs them (each in its own process group)
UP = """
import os, sys
from thumbloop.cli.supervisor import StackProcess, run
procs = [StackProcess("one", ("sleep", "300")), StackProcess("two", ("sleep", "300"))]
sys.exit(run(procs, dict(os.environ)))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose; honcho's children are not ours to reap
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except OSError:  # it exited between the two looks
        return False


def _start_up() -> tuple[subprocess.Popen[bytes], list[int]]:
    up = subprocess.Popen([sys.executable, "-c", UP], stdout=subprocess.PIPE)
    assert up.stdout is not None
    pids: list[int] = []
    deadline = time.monotonic() + 60
    while len(pids) < 2 and time.monotonic() < deadline:
        line = up.stdout.readline().decode()
        found = re.search(r"started \(pid=(\d+)\)", line)
        if found:
            pids.append(int(found.group(1)))
    assert len(pids) == 2, "the children did not start"
    return up, pids


def _wait_gone(pids: list[int], timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [pid for pid in pids if _alive(pid)]
        if not left:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if _alive(pid)]


def _signal(sig: int) -> Callable[[subprocess.Popen[bytes]], None]:
    return lambda up: up.send_signal(sig)


def _close_output(up: subprocess.Popen[bytes]) -> None:
    assert up.stdout is not None
    up.stdout.close()


@pytest.mark.parametrize(
    "how",
    [_signal(signal.SIGHUP), _signal(signal.SIGTERM), _signal(signal.SIGINT), _close_output],
    ids=["sighup", "sigterm", "sigint", "output-closed"],
)
def test_up_stops_its_processes(how: Callable[[subprocess.Popen[bytes]], None]) -> None:
    up, pids = _start_up()
    try:
        how(up)
        assert _wait_gone(pids) == [], "children left running"
        assert up.wait(timeout=20) != 0
    finally:
        for pid in pids:
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
        if up.poll() is None:
            up.kill()
