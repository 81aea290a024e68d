"""The Slack adapter: a slack-bolt ``AsyncApp`` wired to :class:`bots.slack.handlers.SlackHandlers`.

Two ways in, as bolt offers them:

* **Socket Mode** (``run_socket_mode``): an outbound WebSocket, no public URL; needs an app-level
  token (``xapp-…``).
* **HTTP Events API** (``build_http_app``): ``POST /slack/events`` (bolt's default path) served by
  uvicorn; bolt verifies each request's ``X-Slack-Signature`` and refuses bad or stale ones (401).
  Bodies over ``MAX_BODY_BYTES`` are refused (413) before anything reads or verifies them.

Listeners are thin: each hands its payload to a handler. Cross-cutting concerns are tiny
middleware (repeat deliveries, :mod:`bots.slack.middleware`). Every request a listener may take
stays on disk until it has returned (:mod:`bots.slack.inbox`). The Web API client retries 429s
after ``Retry-After`` and connection errors (slack_sdk's retry handlers).
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
from slack_bolt.request.async_request import AsyncBoltRequest
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
from bots.common.spool import Spool, spool_path
from bots.slack.body_limit import BodyLimit
from bots.slack.convert import CHOICE_ACTION, VOTE_ACTION
from bots.slack.handlers import PLATFORM, SlackHandlers
from bots.slack.inbox import SlackInbox, is_replay
from bots.slack.middleware import answer_malformed_with_400, skip_repeated_events
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


# -- the app ------------------------------------------------------------------------------


class InboxApp(AsyncApp):
    """bolt's app, with each request in the inbox from before it is acknowledged until it is
    handled (:mod:`bots.slack.inbox`); HTTP and Socket Mode both dispatch through here."""

    inbox: SlackInbox | None = None

    async def async_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        if self.inbox is None:
            return await self.bolt_dispatch(req)
        return await self.inbox.dispatch(self.bolt_dispatch, req)

    async def bolt_dispatch(self, req: AsyncBoltRequest) -> BoltResponse:
        """bolt's own dispatch, without the inbox (a replay wraps it itself)."""
        return await super().async_dispatch(req)


@dataclass
class SlackBot:
    """The bolt app and what it holds open; ``start`` handles what an earlier run left, then
    starts the outbox; ``aclose`` drains the outbox and closes clients."""

    app: InboxApp
    handlers: SlackHandlers
    outbox: Outbox
    serving: ServingClient
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    signing_secret: str | None = None  # HTTP mode: checked before bolt parses a body
    inbox: SlackInbox | None = None

    async def start(self) -> None:
        self.outbox.start()  # what an earlier run left unsent goes out first
        if self.inbox is not None and self.inbox.left:
            handled = await self.inbox.replay(self.app.bolt_dispatch)
            log.info("handled %d Slack request(s) an earlier run had left", handled)

    async def aclose(self, drain_timeout_s: float = 5.0) -> None:
        if self.inbox is not None:
            self.inbox.close()
        await self.outbox.aclose(drain_timeout_s)
        await self.serving.aclose()
        for close in self.closers:
            with contextlib.suppress(Exception):
                await close()


def build_bolt_app(
    settings: Settings,
    handlers: SlackHandlers,
    *,
    client: AsyncWebClient,
    http: bool,
    inbox: SlackInbox | None = None,
) -> InboxApp:
    """The bolt app with its listeners. ``http`` turns on request signature verification;
    ``inbox`` keeps each request on disk until its listener has returned."""
    signing_secret = _secret(settings.bots.slack_signing_secret)
    if http and not signing_secret:
        raise SlackConfigError(
            "THUMBLOOP_SLACK_SIGNING_SECRET is not set (HTTP mode verifies every request with it)"
        )
    app = InboxApp(
        client=client,
        signing_secret=signing_secret or "",
        request_verification_enabled=http,
        process_before_response=False,
        logger=logging.getLogger("bots.slack.app.bolt"),
    )
    app.inbox = inbox
    app.middleware(skip_repeated_events(handlers.state))
    app.error(answer_malformed_with_400)
    # a listener guarded so takes its request from the inbox, and deletes it once it returned
    guard = [inbox.take] if inbox is not None else []

    def handled(context: AsyncBoltContext) -> None:
        if inbox is not None:
            inbox.done(context)

    async def on_message(
        event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        try:
            await handlers.on_message(event, context.bot_user_id, client, replay=is_replay(context))
        finally:
            handled(context)

    # a direct message and an @-mention are answered alike
    app.event("message", middleware=guard)(on_message)
    app.event("app_mention", middleware=guard)(on_message)

    @app.action(re.compile(VOTE_ACTION.pattern), middleware=guard)
    async def on_vote(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        try:
            await ack()  # Slack's 3-second rule: acknowledge first, work after
            await handlers.on_vote_click(body, client)
        finally:
            handled(context)

    @app.action(re.compile(CHOICE_ACTION.pattern), middleware=guard)
    async def on_choice(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        try:
            await ack()
            await handlers.on_choice_click(body, client)
        finally:
            handled(context)

    async def on_reaction(
        event: dict[str, Any], context: AsyncBoltContext, client: AsyncWebClient
    ) -> None:
        try:
            await handlers.on_reaction(event, context.bot_user_id, client)
        finally:
            handled(context)

    # the handler tells a vote from a withdrawal by the event's type
    app.event("reaction_added", middleware=guard)(on_reaction)
    app.event("reaction_removed", middleware=guard)(on_reaction)

    @app.command(COMMAND, middleware=guard)
    async def on_command(ack: AsyncAck, command: dict[str, Any], context: AsyncBoltContext) -> None:
        try:
            await ack(text=await handlers.on_command(command), response_type="ephemeral")
        finally:
            handled(context)

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
    history = history if history is not None else make_history(settings, PLATFORM)
    state = state if state is not None else make_slack_state(settings)
    followups = make_followup_store(settings, PLATFORM)
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
    inbox = SlackInbox(Spool(spool_path(settings.home, "slack", "inbox")))
    app = build_bolt_app(settings, handlers, client=client, http=http, inbox=inbox)
    return SlackBot(
        app=app,
        handlers=handlers,
        outbox=outbox,
        serving=serving,
        closers=closers,
        signing_secret=_secret(settings.bots.slack_signing_secret),
        inbox=inbox,
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
        await bot.start()
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
    await bot.start()
    try:
        await handler.start_async()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()
        await bot.aclose()
