"""Fuzzing the HTTP endpoints Thumbloop exposes, for real: serving's ``POST /v1/predict`` and
``POST /v1/answer`` (a tiny model loaded), the Slack bot's Events API endpoint (slack-bolt HTTP
mode, requests signed with its signing secret) and the Telegram bot's webhook
(python-telegram-bot's server, with its secret-token header), each on loopback, the bots
answering through the real serving and the local fake platform APIs.

Requests come from hypothesis strategies (``tests/fuzz/strategies.py``). A 500 is a failure;
so is a request the server drops. Used by ``tests/fuzz/test_http.py`` (a few hundred cases per
endpoint in CI) and ``bench/fuzz.py`` (ten thousand and more, with memory figures).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import SecretStr

from tests.fuzz.strategies import (
    ANSWER,
    ID_KEY,
    MESSAGE,
    SIGNING_KEY,
    SLACK_SECRET,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    TYPED,
    Request,
    _megabyte_json,
    _slack_megabyte,
    _telegram_megabyte,
    serving_requests,
    slack_requests,
    telegram_requests,
)
from tests.integration.fakes.slack_api import run_fake_slack_api
from tests.integration.fakes.telegram_bot import BotThread, wait_until
from tests.integration.fakes.telegram_server import FakeBotApi
from tests.integration.servers import free_port, run_uvicorn
from tests.tiny_bundle import make_tiny_bundle
from thumbloop.settings import Settings


@dataclass
class Target:
    """One endpoint: where it is, the requests to send it, and which statuses it may answer."""

    name: str
    base: str
    requests: st.SearchStrategy[Request]
    allowed: frozenset[int]
    megabyte: Callable[[bytes], Request]  # a 1 MB body as this endpoint would be sent one


@dataclass
class Tally:
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[tuple[Request, str]] = field(default_factory=list)
    dropped: int = 0  # requests that got no answer at all

    @property
    def cases(self) -> int:
        return sum(self.statuses.values()) + self.dropped

    def record(self, request: Request, status: int | None, why: str = "") -> None:
        if status is None:
            self.dropped += 1
            self.failures.append((request, why))
            return
        self.statuses[status] += 1
        if status >= 500 and status not in (503, 504):
            self.failures.append((request, f"status {status}: {why[:300]}"))


# -- the servers -----------------------------------------------------------------------------


@contextmanager
def targets(home: Path) -> Iterator[list[Target]]:
    """Serving (a tiny model), the Slack bot in HTTP mode and the Telegram bot in webhook mode,
    all on loopback; the bots answer through that serving and the fake platform APIs."""
    from bots.slack.app import build_http_app, build_slack_bot
    from bots.telegram.app import (
        TelegramOptions,
        WebhookConfig,
        build_application,
        run_webhook,
    )
    from serving.app import create_app

    with ExitStack() as stack:
        bundle = make_tiny_bundle(home / "bundle", favour="card_arrival")
        serving_settings = Settings(
            home=home / "serving",
            device="cpu",
            cpu_bf16="off",
            model_processes=0,
            max_text_bytes=2_000,
        )
        serving = stack.enter_context(run_uvicorn(create_app(serving_settings, str(bundle))))
        closed_broker = f"redis://127.0.0.1:{free_port()}/0"  # tasks spool to the outbox

        slack_api = stack.enter_context(run_fake_slack_api())
        slack_settings = Settings(
            home=home / "slack",
            slack_bot_token=SecretStr("xoxb-test-0000-thumbloop"),
            slack_signing_secret=SecretStr(SLACK_SECRET),
            slack_api_url=slack_api.base_url,
            serving_url=serving,
            broker_url=closed_broker,
            id_key=SecretStr(ID_KEY),
            signing_key=SecretStr(SIGNING_KEY),
        )
        slack = stack.enter_context(
            run_uvicorn(build_http_app(build_slack_bot(slack_settings, http=True)), "/healthz")
        )

        fake_tg = FakeBotApi(TELEGRAM_TOKEN)
        tg_base = stack.enter_context(run_uvicorn(fake_tg.app, ready_path=None))
        tg_settings = Settings(
            home=home / "telegram",
            telegram_token=SecretStr(TELEGRAM_TOKEN),
            telegram_base_url=f"{tg_base}/bot",
            telegram_base_file_url=f"{tg_base}/file/bot",
            serving_url=serving,
            broker_url=closed_broker,
            id_key=SecretStr(ID_KEY),
            signing_key=SecretStr(SIGNING_KEY),
        )
        app = build_application(tg_settings, TelegramOptions(queue_retry_max_s=1))
        port = free_port()
        webhook = WebhookConfig(
            url="https://bot.example.test/tg/hook", secret_token=TELEGRAM_SECRET, port=port
        )
        bot = BotThread(app, lambda: run_webhook(app, webhook, stop_signals=None)).start()
        stack.callback(bot.stop)
        wait_until(lambda: fake_tg.webhook is not None and app.running, timeout=60)
        yield endpoints(
            {"serving": serving, "slack": slack, "telegram": f"http://127.0.0.1:{port}"},
            "/" + webhook.path,
        )


def endpoints(bases: dict[str, str], telegram_path: str) -> list[Target]:
    """The four targets, given where serving, the Slack bot and the Telegram webhook listen."""
    serving, slack, telegram = bases["serving"], bases["slack"], bases["telegram"]
    return [
        Target(
            "serving /v1/predict",
            serving,
            serving_requests("/v1/predict", TYPED | MESSAGE),
            frozenset({200, 400, 413, 422, 503, 504}),
            _megabyte_json("/v1/predict", "text"),
        ),
        Target(
            "serving /v1/answer",
            serving,
            serving_requests("/v1/answer", ANSWER),
            frozenset({200, 400, 413, 422, 503}),
            _megabyte_json("/v1/answer", "intent"),
        ),
        Target(
            "slack /slack/events",
            slack,
            slack_requests(),
            frozenset({200, 400, 401, 404, 413}),
            _slack_megabyte,
        ),
        Target(
            "telegram webhook",
            telegram,
            telegram_requests(telegram_path),
            frozenset({200, 400, 403, 413}),
            _telegram_megabyte(telegram_path),
        ),
    ]


@contextmanager
def served_elsewhere(home: Path) -> Iterator[tuple[list[Target], int]]:
    """The same servers in a child process (``python -m tests.fuzz.harness HOME``): the targets
    and the child's pid, so that its memory is measured apart from the fuzzer's own (hypothesis
    keeps a tree of the cases it tried)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fuzz.harness", str(home)],
        cwd=root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the bots log every failed call of a made-up chat
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the servers did not start (exit {proc.wait()})")
        found = json.loads(line)
        yield endpoints(found["bases"], found["telegram_path"]), proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the child's signal to stop
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve(home: Path) -> None:
    """The child of :func:`served_elsewhere`: start the servers, print where they are, serve
    until stdin closes."""
    import logging
    import sys

    logging.basicConfig(level=logging.CRITICAL)
    with targets(home) as found:
        bases = {"serving": found[0].base, "slack": found[2].base, "telegram": found[3].base}
        path = found[3].megabyte(b"").path
        print(json.dumps({"bases": bases, "telegram_path": path}), flush=True)
        sys.stdin.read()


def send(client: httpx.Client, target: Target, request: Request, tally: Tally) -> None:
    try:
        r = client.post(
            target.base + request.path, headers=request.wire_headers(), content=request.body
        )
    except httpx.HTTPError as exc:
        tally.record(request, None, f"{type(exc).__name__}: {exc}")
        return
    tally.record(request, r.status_code, r.text)


def fuzz(
    target: Target,
    cases: int,
    client: httpx.Client,
    tally: Tally | None = None,
    seed: int | None = None,
) -> Tally:
    """``cases`` requests from the target's strategy (the same ones again for the same
    ``seed``); every answer counted in the tally."""
    tally = tally if tally is not None else Tally()

    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=target.requests)
    def run(request: Request) -> None:
        send(client, target, request, tally)

    (run if seed is None else hypothesis_seed(seed)(run))()
    return tally


def send_chunked_megabyte(client: httpx.Client, target: Target, tally: Tally) -> int | None:
    """A 1 MB body sent chunked (no Content-Length), in 64 KiB pieces."""
    request = target.megabyte(b"a" * (1 << 20))

    def pieces() -> Iterator[bytes]:
        for at in range(0, len(request.body), 1 << 16):
            yield request.body[at : at + (1 << 16)]

    try:
        r = client.post(
            target.base + request.path, headers=request.wire_headers(), content=pieces()
        )
    except httpx.HTTPError as exc:
        tally.record(request, None, f"{type(exc).__name__}: {exc}")
        return None
    tally.record(request, r.status_code, r.text)
    return r.status_code


if __name__ == "__main__":
    import sys

    _serve(Path(sys.argv[1]))
