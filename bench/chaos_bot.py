"""(g) The broker down while platform updates arrive and the bot is killed: every update the bot
handled is stored, and none is dropped without a word.

A real ``thumbloop bot telegram`` process polls a local Bot API server (the tests' stand-in,
``tests/integration/fakes``, which speaks Telegram's HTTP protocol: ``getUpdates`` with offset
confirmation, ``sendMessage``, ``answerCallbackQuery``...), asks a real ``thumbloop serve`` and
hands its tasks to a real ``thumbloop worker`` through the broker. The bot and the worker reach
the broker through a :class:`~bench.chaos_servers.TcpGate`, shut for the outage. Users (one
private chat each, one update in flight each) send messages and press 👍/👎 under the replies at
a steady rate while the broker is down; the bot process is SIGKILLed at a third and two thirds
of the outage and started again at once. Then the broker comes back.

The oracle is what the users saw: every message that got a reply with vote buttons must be
stored as that interaction (its id is derived from the message, so the buttons name it), with
its text; every (reply, user) whose press was answered must hold the value of the user's last
answered press. An update never answered by the end is **dropped silently**; one answered with
an apology (no buttons: serving failed) is not silent and stores nothing.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select

from bench.chaos_scenarios import Result
from bench.chaos_servers import TcpGate
from bench.chaos_stack import ROOT, Backend, Worker, settle, stop_group
from bench.chaos_traffic import Traffic
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port, run_uvicorn
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import InteractionRow, VoteRow

TITLE = "bot SIGKILLed while the broker is down and platform updates arrive"
PASS = "every handled update stored, 0 dropped silently"
TOKEN = "777001:CHAOS-bot-token_abcdefghijklmno"


class BotProcess:
    """``thumbloop bot telegram`` in its own process group, restarted after each kill on the
    same home (its outbox and inbox spools)."""

    def __init__(self, env: dict[str, str], home: Path) -> None:
        self.env, self.home = env, home
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / "bot.log"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "thumbloop", "bot", "telegram"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> None:
        stop_group(self.proc)

    def counted(self, pattern: str) -> int:
        """The sum of the numbers the bot's log printed in lines matching ``pattern``."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return sum(int(m) for m in re.findall(pattern, text))


def _broker_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    default = 5672 if parts.scheme.startswith("amqp") else 6379
    return parts.hostname or "127.0.0.1", parts.port or default


def _through(url: str, port: int) -> str:
    parts = urlsplit(url)
    auth = parts.netloc.rpartition("@")[0]
    return parts._replace(
        netloc=f"{auth}@127.0.0.1:{port}" if auth else f"127.0.0.1:{port}"
    ).geturl()


def _stored(db_url: str, iids: set[uuid.UUID]) -> tuple[dict[uuid.UUID, str], dict[Any, int]]:
    """The stored texts and live votes of the run's interactions (ids are strings in SQL)."""
    mine = {str(i) for i in iids}
    engine = make_engine(db_url)
    try:
        with session_scope(engine) as s:
            rows = s.execute(select(InteractionRow.interaction_id, InteractionRow.text))
            texts = {uuid.UUID(i): str(t) for i, t in rows if i in mine}
            live = s.execute(
                select(VoteRow.interaction_id, VoteRow.rater, VoteRow.value).where(
                    VoteRow.value != 0
                )
            )
            votes = {(uuid.UUID(i), r): int(v) for i, r, v in live if i in mine}
    finally:
        engine.dispose()
    return texts, votes


def bot_outage(
    backend: Backend,
    bundle_dir: Path,
    n_updates: int = 300,
    outage_s: float = 30.0,
    kills: int = 2,
    users: int = 40,
    seed: int = 0,
    settle_s: float = 240.0,
) -> Result:
    begin = time.monotonic()
    keys = (uuid.uuid4().hex * 2, uuid.uuid4().hex * 2)  # id key, signing key
    rate = n_updates / outage_s
    details: dict[str, Any] = {}
    with ExitStack() as stack:
        api = FakeBotApi(TOKEN)
        base = stack.enter_context(run_uvicorn(api.app, ready_path=None))
        serving = _serve(bundle_dir, stack)
        # the embedded broker is a file in the home: nothing to take away, the kills remain
        outage_gate = (
            None
            if backend.broker_url.startswith("sqla+")
            else TcpGate(_broker_target(backend.broker_url))
        )
        broker = backend.broker_url
        if outage_gate is not None:
            outage_gate.up()
            stack.callback(outage_gate.close)
            broker = _through(broker, outage_gate.port)
        worker = Worker(backend, THUMBLOOP_BROKER_URL=broker, THUMBLOOP_VISIBILITY_TIMEOUT_S="150")
        worker.start()
        stack.callback(worker.stop)
        env = os.environ | backend.env(
            THUMBLOOP_BROKER_URL=broker,
            THUMBLOOP_TELEGRAM_TOKEN=TOKEN,
            THUMBLOOP_TELEGRAM_BASE_URL=f"{base}/bot",
            THUMBLOOP_TELEGRAM_BASE_FILE_URL=f"{base}/file/bot",
            THUMBLOOP_SERVING_URL=serving,
            THUMBLOOP_ID_KEY=keys[0],
            THUMBLOOP_SIGNING_KEY=keys[1],
        )
        home = backend.home / "bot"
        home.mkdir(parents=True, exist_ok=True)
        bot = BotProcess(env | {"THUMBLOOP_HOME": str(home)}, home)
        bot.start()
        stack.callback(bot.stop)
        _wait_polling(api, bot)

        traffic = Traffic(api, keys, n_updates, rate, users, seed)
        if outage_gate is not None:
            outage_gate.down()
        down_at = time.monotonic()
        traffic.start()
        for k in range(1, kills + 1):  # killed at a third and two thirds of the outage
            _sleep_until(down_at + outage_s * k / (kills + 1))
            bot.kill()
            bot.start()
        _sleep_until(down_at + outage_s)
        if outage_gate is not None:
            outage_gate.up()
        up_at = time.monotonic()
        traffic.join(timeout=settle_s)

        deadline = time.monotonic() + settle_s
        while time.monotonic() < deadline:
            traffic.settle_answers()
            if all(u.inflight is None for u in traffic.users):
                break
            time.sleep(0.5)
        sent = traffic.sent
        answered = [s for s in sent if s.answered_at is not None]
        want_texts = {s.iid: s.text for s in answered if s.kind == "message"}
        raters = {u.info["id"]: u.rater for u in traffic.users}
        want_votes: dict[tuple[uuid.UUID, str], int] = {}
        for s in sorted((s for s in answered if s.kind == "press"), key=lambda s: s.at):
            want_votes[(s.iid, raters[s.user])] = s.value
        mine = {s.iid for s in sent}

        def read() -> tuple[dict[uuid.UUID, str], dict[Any, int]]:
            return _stored(backend.db_url, mine)

        def done(seen: tuple[dict[uuid.UUID, str], dict[Any, int]]) -> bool:
            texts, votes = seen
            return all(texts.get(i) == t for i, t in want_texts.items()) and votes == want_votes

        (texts, votes), waited = settle(read, done, quiet_s=60.0, deadline_s=settle_s)
        stored_at = time.monotonic() - up_at
        lost = [str(i) for i, t in want_texts.items() if texts.get(i) != t]
        lost += [
            f"{i}/{r[:8]}: {v} vs {votes.get((i, r))}"
            for (i, r), v in want_votes.items()
            if votes.get((i, r)) != v
        ]
        extra = [k for k in votes if k not in want_votes]
        unexpected = [i for i in texts if i not in want_texts]
        dropped = [s for s in sent if s.answered_at is None]
        apologies = traffic.apologies()
        silent = max(0, len([s for s in dropped if s.kind == "message"]) - apologies) + len(
            [s for s in dropped if s.kind == "press"]
        )
        replayed = bot.counted(r"(\d+) update\(s\) an earlier run received")
        resent = bot.counted(r"(\d+) task\(s\) left unsent by an earlier run")
        outbox_dropped = bot.counted(r"outbox full \((\d+)\)")
        details.update(
            sent=len(sent),
            messages=sum(s.kind == "message" for s in sent),
            presses=sum(s.kind == "press" for s in sent),
            answered=len(answered),
            dropped_silently=silent,
            apologies=apologies,
            lost=len(lost),
            extra=len(extra),
            unexpected_interactions=len(unexpected),
            examples=lost[:5],
            replayed_updates=replayed,
            resent_tasks=resent,
            outbox_dropped=outbox_dropped,
            bot_starts=kills + 1,
            stalls=traffic.stalls,
            stored_after_broker_back_s=round(stored_at, 1),
            settle_wait_s=round(waited, 1),
            traffic_error=repr(traffic.error) if traffic.error else None,
        )
    passed = (
        traffic.error is None
        and len(sent) == n_updates
        and not (lost or extra or unexpected or silent or outbox_dropped)
    )
    return Result(
        "g",
        TITLE,
        backend.name,
        f"{n_updates} updates ({details['messages']} messages, {details['presses']} presses) "
        f"from {users} users, broker "
        + (f"down {outage_s:.0f} s" if outage_gate else f"a file ({outage_s:.0f} s of traffic)")
        + f", {kills} bot kills",
        PASS,
        f"answered {len(answered)}/{len(sent)} (dropped silently {silent}, apologies "
        f"{apologies}); lost {len(lost)}, extra {len(extra)}, unexpected {len(unexpected)}; "
        f"{replayed} updates handled again after the kills, {resent} tasks found unsent in the "
        f"spool at the restarts (summed), {outbox_dropped} dropped by the outbox; all stored "
        f"{stored_at:.0f} s after "
        + ("the broker came back" if outage_gate else "the traffic ended"),
        passed,
        time.monotonic() - begin,
        details,
    )


def _serve(bundle_dir: Path, stack: ExitStack) -> str:
    port = free_port()
    home = Path(tempfile.mkdtemp(prefix="chaos-bot-serving-"))
    env = os.environ | {"THUMBLOOP_HOME": str(home), "THUMBLOOP_DEVICE": "cpu"}
    log = (home / "serve.log").open("wb")
    stack.callback(log.close)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "thumbloop",
            "serve",
            "--model",
            str(bundle_dir),
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    stack.callback(stop_group, proc)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"serving did not start: {(home / 'serve.log').read_text()[-2000:]}")


def _wait_polling(api: FakeBotApi, bot: BotProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not api.calls_to("getUpdates"):
        if time.monotonic() > deadline or (bot.proc is not None and bot.proc.poll() is not None):
            raise RuntimeError(f"the bot did not start: {bot.log.read_text()[-2000:]}")
        time.sleep(0.2)


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))
