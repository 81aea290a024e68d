"""The Slack adapter: a slack-bolt ``AsyncApp`` wired to :class:`bots.slack.handlers.SlackHandlers`.

Two ways in, as bolt offers them:

* **Socket Mode** (``run_socket_mode``): an outbound WebSocket, no public URL; needs an app-level
  token (``xapp-…``).
* **HTTP Events API** (``build_http_app``): ``POST /slack/events`` (bolt's default path) served by
  uvicorn; bolt verifies each request's ``X-Slack-Signature`` and refuses bad or stale ones (401).
  Bodies over ``MAX_BODY_BYTES`` are refused (413) before anything reads or verifies them.

Listeners are thin: each hands its payload to a handler. Cross-cutting concerns are tiny
middleware (repeat deliveries). The Web API client retries 429s after ``Retry-After`` and
connection errors (slack_sdk's retry handlers).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext
from slack_bolt.response import BoltResponse
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from bots.common.followup_store import make_followup_store
from bots.common.history import History, make_history
from bots.common.outbox import Outbox
from bots.common.signing import SigningKeys
from bots.common.spool import spool_path
from bots.slack.body_limit import BodyLimit
from bots.slack.convert import CHOICE_ACTION, VOTE_ACTION
from bots.slack.handlers import SlackHandlers
from bots.slack.state import SlackState, make_slack_state
from serving.client import ServingClient
from thumbloop.identity import KeyConfigError, check_keys
from thumbloop.queue import TaskQueue, TaskSender
from thumbloop.settings import Settings

__all__ = [
    "EVENTS_PATH",
    "MAX_BODY_BYTES",
    "SlackBot",
    "build_bolt_app",
    "build_http_app",
    "build_slack_bot",
    "build_web_client",
    "run_socket_mode",
]

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
COMMAND = "/thumbloop"
# Slack's events, actions and commands are a few KiB; a body this large is not Slack's, and
# buffering it for the signature check would let anyone fill the bot's memory.
MAX_BODY_BYTES = 1 << 20


class SlackConfigError(ValueError):
    """A token or secret the chosen mode needs is missing or malformed."""


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def build_web_client(settings: Settings, *, rate_limit_retries: int = 3) -> AsyncWebClient:
    """The Web API client: ``THUMBLOOP_SLACK_API_URL``, retries on 429 and connection errors."""
    token = _secret(settings.bots.slack_bot_token)
    if not token:
        raise SlackConfigError("THUMBLOOP_SLACK_BOT_TOKEN is not set (the bot token, xoxb-...)")
    base_url = (
        settings.bots.slack_api_url
        if settings.bots.slack_api_url.endswith("/")
        else (settings.bots.slack_api_url + "/")
    )
    return AsyncWebClient(
        token=token,
        base_url=base_url,
        timeout=10,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ],
    )


# -- middleware ---------------------------------------------------------------------------


def skip_repeated_events(
    state: SlackState,
) -> Callable[..., Awaitable[BoltResponse | None]]:
    """Answer 200 to an Events API delivery whose ``event_id`` was handled already.

    Slack redelivers (``X-Slack-Retry-Num``) when it did not see a 200 in time; the first
    delivery is still being handled, so the repeat must do nothing.
    """

    async def middleware(
        body: dict[str, Any], next_: Callable[[], Awaitable[BoltResponse]]
    ) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and not await state.claim(f"event:{event_id}"):
            log.info("repeat delivery of %s ignored", event_id)
            return BoltResponse(status=200, body="")
        return await next_()

    return middleware


async def answer_malformed_with_400(
    error: Exception, response: BoltResponse | None
) -> BoltResponse | None:
    """Bolt's error handler. Found by fuzzing (tests/fuzz): bolt's own middleware and matchers
    raise on well-signed payloads of unexpected shapes (an action list that is empty, an event
    that is a list, ...), and bolt answered those 500. An error raised inside slack_bolt or
    slack_sdk is the request's fault: 400. An error of ours stays a 500, logged in full."""
    tb, last = error.__traceback__, None
    while tb is not None:
        last, tb = tb, tb.tb_next
    module = last.tb_frame.f_globals.get("__name__", "") if last is not None else ""
    if response is not None and module.startswith(("slack_bolt.", "slack_sdk.")):
        log.warning("a malformed request (%s: %s in %s)", type(error).__name__, error, module)
        return BoltResponse(status=400, body="malformed request")
    log.error("a Slack listener failed", exc_info=error)
    return None


# -- the app ------------------------------------------------------------------------------


@dataclass
class SlackBot:
    """The bolt app and what it holds open; ``aclose`` drains the outbox and closes clients."""

    app: AsyncApp
    handlers: SlackHandlers
    outbox: Outbox
    serving: ServingClient
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    signing_secret: str | None = None  # HTTP mode: checked before bolt parses a body

    async def aclose(self, drain_timeout_s: float = 5.0) -> None:
        await self.outbox.aclose(drain_timeout_s)
        await self.serving.aclose()
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()


def build_bolt_app(
    settings: Settings, handlers: SlackHandlers, *, client: AsyncWebClient, http: bool
) -> AsyncApp:
    """The bolt app with its listeners. ``http`` turns on request signature verification."""
    signing_secret = _secret(settings.bots.slack_signing_secret)
    if http and not signing_secret:
        raise SlackConfigError(
            "THUMBLOOP_SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request with it)"
        )
    app = AsyncApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=http,
        process_before_response=False,
        logger=logging.getLogger("bots.slack.app.bolt"),
    )
    app.middleware(skip_repeated_events(handlers.state))
    app.error(answer_malformed_with_400)

    async def on_message(
        event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await handlers.on_message(event, context.bot_user_id, client)

    # a direct message and an @-mention are answered alike
    app.event("message")(on_message)
    app.event("app_mention")(on_message)

    @app.action(re.compile(VOTE_ACTION.pattern))
    async def on_vote(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()  # Slack's 3-second rule: acknowledge first, work after
        await handlers.on_vote_click(body, client)

    @app.action(re.compile(CHOICE_ACTION.pattern))
    async def on_choice(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        await handlers.on_choice_click(body, client)

    async def on_reaction(
        event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        await handlers.on_reaction(event, context.bot_user_id, client)

    # the handler tells a vote from a withdrawal by the event's type
    app.event("reaction_added")(on_reaction)
    app.event("reaction_removed")(on_reaction)

    @app.command(COMMAND)
    async def on_command(ack: AsyncAck, command: dict[str, Any]) -> None:
        await ack(text=await handlers.on_command(command), response_type="ephemeral")

    return app


def build_slack_bot(
    settings: Settings,
    *,
    http: bool,
    sender: TaskSender | None = None,
    history: History | None = None,
    state: SlackState | None = None,
    outbox_backoff_s: float = 0.5,
) -> SlackBot:
    """Everything the adapter needs, from settings (each part can be handed in instead).

    Refuses (:class:`SlackConfigError`) the public development key outside ``THUMBLOOP_DEV``.
    """
    try:
        keys = check_keys(settings)
    except KeyConfigError as exc:
        raise SlackConfigError(str(exc)) from exc
    client = build_web_client(settings)
    closers: list[Callable[[], Awaitable[None]]] = []
    if sender is None:
        queue = TaskQueue(settings.effective_broker_url)
        sender = queue

        async def close_queue() -> None:
            queue.close()

        closers.append(close_queue)
    history = history if history is not None else make_history(settings)
    state = state if state is not None else make_slack_state(settings)
    followups = make_followup_store(settings)
    for part in (history, state, followups):
        aclose = getattr(part, "aclose", None)
        if aclose is not None:
            closers.append(aclose)
    outbox = Outbox(
        sender, spool=spool_path(settings.home, "slack"), retry_initial_s=outbox_backoff_s
    )
    serving = ServingClient(settings.serving.serving_url)
    handlers = SlackHandlers(
        id_key=keys.id_key,
        signing=SigningKeys(keys.signing_key, keys.signing_key_previous),
        serving=serving,
        history=history,
        state=state,
        outbox=outbox,
        followups=followups,
    )
    app = build_bolt_app(settings, handlers, client=client, http=http)
    return SlackBot(
        app=app,
        handlers=handlers,
        outbox=outbox,
        serving=serving,
        closers=closers,
        signing_secret=_secret(settings.bots.slack_signing_secret),
    )


def build_http_app(bot: SlackBot, *, max_body_bytes: int = MAX_BODY_BYTES) -> ASGIApp:
    """ASGI app for the Events API: ``POST /slack/events`` (bolt) and ``GET /healthz``, behind
    :class:`BodyLimit`."""
    handler = AsyncSlackRequestHandler(bot.app)
    verifier = SignatureVerifier(bot.signing_secret) if bot.signing_secret else None

    async def events(request: Request) -> Response:
        # Found by fuzzing (tests/fuzz): bolt parses a body before it checks the signature, and
        # slack_sdk's check raises on a timestamp that is not a number or a body that is not
        # UTF-8; both answered 500. Unsigned requests now get 401 before anything is parsed,
        # and a signed body bolt cannot make sense of gets 400.
        if verifier is not None and not _signed(verifier, await request.body(), request):
            return PlainTextResponse("invalid request signature", status_code=401)
        try:
            return await handler.handle(request)
        except Exception:  # bolt's own parsing: listeners' errors never reach here
            log.warning("a signed request bolt could not parse", exc_info=True)
            return PlainTextResponse("malformed request", status_code=400)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        bot.outbox.start()  # what an earlier run left unsent goes out first
        try:
            yield
        finally:
            await bot.aclose()

    app = Starlette(
        routes=[Route(EVENTS_PATH, events, methods=["POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )
    return BodyLimit(app, max_body_bytes)


def _signed(verifier: SignatureVerifier, body: bytes, request: Request) -> bool:
    headers = request.headers
    try:
        return verifier.is_valid(
            body, headers.get("x-slack-request-timestamp"), headers.get("x-slack-signature")
        )
    except ValueError:  # a timestamp that is not a number; a body that is not UTF-8
        return False


async def run_socket_mode(bot: SlackBot, app_token: str) -> None:
    """Connect over Socket Mode and handle events until cancelled."""
    handler = AsyncSocketModeHandler(bot.app, app_token)
    bot.outbox.start()
    try:
        await handler.start_async()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()
        await bot.aclose()
