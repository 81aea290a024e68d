"""The bots' task outbox: in order, waits out broker outages, bounded, and with a spool file
nothing is lost when the bot dies before the broker took it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kombu.exceptions import OperationalError

from bots.common.outbox import Outbox
from bots.common.spool import spool_path

ROOT = Path(__file__).resolve().parents[4]


class FlakyBroker:
    """A TaskSender whose broker is down for the first ``down`` sends; ``poison`` names a task
    it refuses for what it is (not a broker outage)."""

    def __init__(self, down: int = 0, poison: str | None = None) -> None:
        self.down, self.poison = down, poison
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        self.attempts += 1
        if name == self.poison:
            raise TypeError("cannot serialise")
        if self.attempts <= self.down:
            raise OperationalError("Error 111 connecting. Connection refused.")
        self.sent.append((name, kwargs))
        return str(self.attempts)


async def _left_in(spool: Path) -> int:
    """Tasks a spool holds for the next start (looked at, nothing sent)."""
    outbox = Outbox(FlakyBroker(down=10**6), spool=spool)
    pending = outbox.pending
    await outbox.aclose(timeout_s=0)
    return pending


@pytest.mark.parametrize("spooled", [False, True])
async def test_sends_in_order_and_waits_out_an_outage(spooled: bool, tmp_path: Path) -> None:
    broker = FlakyBroker(down=3)
    spool = tmp_path / "o.sqlite" if spooled else None
    outbox = Outbox(broker, spool=spool, retry_initial_s=0.01, retry_max_s=0.02)
    for i in range(5):
        outbox.submit("learning.record_vote", {"i": i})
    assert outbox.pending == 5  # submit never waits for the broker
    assert await outbox.drain(5)
    assert [k["i"] for _, k in broker.sent] == [0, 1, 2, 3, 4]
    assert outbox.failed_attempts == 3 and outbox.sent == 5
    await outbox.aclose()
    if spool is not None:  # everything sent: nothing left on disk for the next start
        assert await _left_in(spool) == 0


async def test_a_sent_message_leaves_no_copy_in_the_spool_files(tmp_path: Path) -> None:
    """The spool holds users' messages: once sent, no byte of them stays in the database file
    or beside it (the write-ahead log held them until a checkpoint), while the bot runs."""
    canary = "zq-outbox-canary-7f3a"
    spool = tmp_path / "o.sqlite"
    outbox = Outbox(FlakyBroker(), spool=spool)
    for i in range(3):
        outbox.submit("learning.record_interaction", {"text": f"{canary} {i}"})
    assert await outbox.drain(5)
    files = list(tmp_path.iterdir())
    assert spool in files
    assert [f.name for f in files if canary.encode() in f.read_bytes()] == []
    await outbox.aclose()


async def test_drops_what_can_never_be_sent_and_the_oldest_when_full(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = FlakyBroker(poison="bad")
    spool = tmp_path / "o.sqlite"
    outbox = Outbox(broker, spool=spool, max_pending=2)
    outbox.submit("bad", {})
    outbox.submit("good", {"n": 1})
    outbox.submit("good", {"n": 2})  # full: the oldest ("bad") goes, from the spool too
    assert outbox.dropped == 1
    assert await outbox.drain(5)
    assert broker.sent == [("good", {"n": 1}), ("good", {"n": 2})]
    outbox.submit("bad", {})
    assert await outbox.drain(5)
    assert outbox.dropped == 2 and "can never be sent" in caplog.text
    await outbox.aclose()
    assert await _left_in(spool) == 0


async def test_without_a_spool_unsent_tasks_are_reported_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbox = Outbox(FlakyBroker(down=10**6), retry_initial_s=0.01, retry_max_s=0.01)
    outbox.submit("learning.record_vote", {})
    await asyncio.sleep(0.05)
    await outbox.aclose(timeout_s=0.1)
    assert "lost at shutdown" in caplog.text


_DOOMED_BOT = """
import asyncio, sys
from pathlib import Path
from kombu.exceptions import OperationalError
from bots.common.outbox import Outbox

class Down:
    def send(self, name, kwargs):
        raise OperationalError("Connection refused")

async def main():
    outbox = Outbox(Down(), spool=Path(sys.argv[1]), retry_initial_s=0.01, retry_max_s=0.01)
    for i in range(3):
        outbox.submit("learning.record_vote", {"i": i, "text": "h\u00e9llo \U0001f44d"})
    print("submitted", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_a_bot_killed_during_an_outage_sends_its_tasks_after_restarting(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = spool_path(tmp_path, "telegram")
    doomed = subprocess.Popen(
        [sys.executable, "-c", _DOOMED_BOT, str(spool)], stdout=subprocess.PIPE, cwd=ROOT
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline() == b"submitted\n"
        # while it lives it owns the spool: a second bot takes the next slot, sending nothing twice
        beside = Outbox(FlakyBroker(), spool=spool)
        assert beside.recovered == 0
        await beside.aclose()
    finally:
        doomed.kill()  # SIGKILL: no shutdown code runs
        doomed.communicate()
    broker = FlakyBroker()
    second = Outbox(broker, spool=spool, retry_initial_s=0.01)
    assert second.recovered == 3 and "found in" in caplog.text
    second.start()
    assert await second.drain(5)
    second.submit("learning.record_vote", {"i": 3})
    assert await second.drain(5)
    assert [k["i"] for _, k in broker.sent] == [0, 1, 2, 3]
    assert broker.sent[0][1]["text"] == "héllo 👍"
    await second.aclose()
    assert await _left_in(spool) == 0


async def test_a_clean_shutdown_during_an_outage_keeps_the_rest_for_next_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "o.sqlite"
    outbox = Outbox(FlakyBroker(down=10**6), spool=spool, retry_initial_s=0.01, retry_max_s=0.01)
    outbox.submit("learning.record_vote", {"i": 0})
    await outbox.aclose(timeout_s=0.1)
    assert "kept in" in caplog.text
    again = Outbox(FlakyBroker(), spool=spool)
    assert again.pending == 1
    await again.aclose()
