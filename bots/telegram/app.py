"""The Telegram adapter: a python-telegram-bot ``Application`` wired to Thumbloop.

:func:`build_application` turns :class:`~thumbloop.settings.Settings` into a ready Application
(handlers, AIORateLimiter, commands registered at start-up, resources closed at shutdown);
:func:`run_polling` and :func:`run_webhook` run it the way python-telegram-bot runs any bot.
The pieces live beside this module: pure checks (``convert``), handlers (``handlers``), reply
references (``state``) and the texts and keyboards (``texts``); the queue outbox is
:mod:`bots.common.outbox`, and the spool of updates received but not yet handled
:mod:`bots.telegram.inbox`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    MessageReactionHandler,
    filters,
)

from bots.common.followup_store import make_followup_store
from bots.common.history import make_history
from bots.common.outbox import Outbox
from bots.common.signing import SigningKeys
from bots.common.spool import Spool, spool_path
from bots.telegram import texts
from bots.telegram.handlers import PLATFORM, TelegramDeps, TelegramHandlers
from bots.telegram.inbox import DurableApplication, DurableUpdateQueue, replay
from bots.telegram.state import make_reply_refs
from serving.client import ServingClient
from thumbloop.identity import KeyConfigError, Keys, check_keys
from thumbloop.queue import TaskQueue
from thumbloop.settings import Settings

log = logging.getLogger(__name__)

# Edited messages are not asked for (and would be ignored by the handlers anyway).
ALLOWED_UPDATES: list[str] = [Update.MESSAGE, Update.CALLBACK_QUERY, Update.MESSAGE_REACTION]

MEDIA = (
    filters.Sticker.ALL
    | filters.PHOTO
    | filters.VOICE
    | filters.VIDEO
    | filters.VIDEO_NOTE
    | filters.AUDIO
    | filters.ANIMATION
    | filters.Document.ALL
    | filters.LOCATION
    | filters.VENUE
    | filters.CONTACT
    | filters.POLL
    | filters.Dice.ALL
    | filters.STORY
)

_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
# The webhook secret is all that tells Telegram's calls from anyone's: long enough not to be
# guessed (`openssl rand -hex 32` gives 64 characters).
MIN_WEBHOOK_SECRET = 32


class ConfigError(ValueError):
    """A setting the adapter cannot start without is missing or malformed."""


@dataclass(frozen=True)
class TelegramOptions:
    reply_timeout_s: float = 6.0  # the user gets an apology after this long without a reply
    serving_timeout_s: float = 3.0  # per HTTP try to the serving worker
    serving_retries: int = 1
    typing_interval_s: float = 4.0
    flood_retries: int = 3  # RetryAfter (429) answers waited out per request
    queue_retry_max_s: float = 30.0


@dataclass(frozen=True)
class WebhookConfig:
    url: str  # the public HTTPS address Telegram posts to
    secret_token: str
    listen: str = "127.0.0.1"
    port: int = 8443
    url_path: str | None = None  # default: the path of ``url``
    dev: bool = False  # development mode: a short secret is allowed

    def __post_init__(self) -> None:
        check_webhook_secret(self.secret_token, dev=self.dev)
        if urlsplit(self.url).scheme != "https":
            raise ConfigError("Telegram only posts to an https:// webhook URL")

    @property
    def path(self) -> str:
        path = self.url_path if self.url_path is not None else urlsplit(self.url).path
        return path.strip("/")


def check_webhook_secret(secret: str, *, dev: bool) -> None:
    """Telegram's rules for ``secret_token``, and at least 32 characters outside development."""
    if not _SECRET_TOKEN.match(secret):
        raise ConfigError("the webhook secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
    if len(secret) < MIN_WEBHOOK_SECRET and not dev:
        raise ConfigError(
            f"THUMBLOOP_TELEGRAM_WEBHOOK_SECRET is shorter than {MIN_WEBHOOK_SECRET} characters: "
            "set it to `openssl rand -hex 32`, or set THUMBLOOP_DEV=true on a development machine"
        )


def keys_of(settings: Settings) -> Keys:
    """The id and signing keys, refused where public outside development mode; and a webhook
    secret, when one is set, checked as :func:`check_webhook_secret` does."""
    try:
        keys = check_keys(settings)
    except KeyConfigError as exc:
        raise ConfigError(str(exc)) from exc
    hook = settings.bots.telegram_webhook_secret
    if hook is not None and hook.get_secret_value():
        check_webhook_secret(hook.get_secret_value(), dev=settings.bots.dev)
    return keys


def token_of(settings: Settings) -> str:
    if settings.bots.telegram_token is None or not settings.bots.telegram_token.get_secret_value():
        raise ConfigError(
            "THUMBLOOP_TELEGRAM_TOKEN is not set: create a bot with @BotFather and export its token"
        )
    return settings.bots.telegram_token.get_secret_value()


def make_deps(settings: Settings, options: TelegramOptions) -> TelegramDeps:
    """The real collaborators: serving client, Celery producer, history and reply references."""
    keys = keys_of(settings)
    return TelegramDeps(
        id_key=keys.id_key,
        signing=SigningKeys(keys.signing_key, keys.signing_key_previous),
        serving=ServingClient(
            settings.serving.serving_url,
            timeout_s=options.serving_timeout_s,
            retries=options.serving_retries,
        ),
        outbox=Outbox(
            TaskQueue(settings.effective_broker_url),
            spool=spool_path(settings.home, "telegram"),
            retry_max_s=options.queue_retry_max_s,
        ),
        history=make_history(settings, PLATFORM),
        refs=make_reply_refs(settings),
        followups=make_followup_store(settings, PLATFORM),
        history_turns=settings.bots.history_turns,
        history_ttl_s=settings.bots.history_ttl_s,
        reply_timeout_s=options.reply_timeout_s,
        typing_interval_s=options.typing_interval_s,
    )


def build_application(
    settings: Settings,
    options: TelegramOptions | None = None,
    *,
    deps: TelegramDeps | None = None,
) -> Application[Any, Any, Any, Any, Any, Any]:
    """The Application, after the checks it cannot start without (:class:`ConfigError`): the
    token, and keys and a webhook secret that are not public or short outside development."""
    options = options or TelegramOptions()
    token = token_of(settings)
    keys_of(settings)  # also when ``deps`` are handed in: the refusal is the builder's
    deps = deps or make_deps(settings, options)
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(settings.bots.telegram_base_url)
        .base_file_url(settings.bots.telegram_base_file_url)
        .rate_limiter(AIORateLimiter(max_retries=options.flood_retries))
        .concurrent_updates(True)
        .application_class(DurableApplication)
        .update_queue(DurableUpdateQueue(Spool(spool_path(settings.home, "telegram", "inbox"))))
        .post_init(_starter(deps))
        .post_shutdown(_closer(deps))
        .build()
    )
    add_handlers(app, TelegramHandlers(deps))
    return app


def add_handlers(app: Application[Any, Any, Any, Any, Any, Any], h: TelegramHandlers) -> None:
    new = filters.UpdateType.MESSAGE  # edited messages never reach a handler
    app.add_handler(CommandHandler("start", h.start, filters=new))
    app.add_handler(CommandHandler("help", h.help, filters=new))
    app.add_handler(CommandHandler("privacy", h.privacy, filters=new))
    app.add_handler(CommandHandler("forget", h.forget, filters=new))
    app.add_handler(MessageHandler(new & filters.TEXT & ~filters.COMMAND, h.on_text))
    app.add_handler(MessageHandler(new & MEDIA, h.on_media))
    app.add_handler(CallbackQueryHandler(h.on_callback))
    app.add_handler(
        MessageReactionHandler(
            h.on_reaction,
            message_reaction_types=MessageReactionHandler.MESSAGE_REACTION_UPDATED,
        )
    )
    app.add_error_handler(h.on_error)


async def register_commands(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
    """``post_init``: the command menu users see (a failure here is logged, not fatal)."""
    try:
        await app.bot.set_my_commands([BotCommand(name, desc) for name, desc in texts.COMMANDS])
    except TelegramError as exc:
        log.warning("could not register the bot commands: %s", type(exc).__name__)
    log.info("telegram bot @%s ready", app.bot.username)


def _starter(
    deps: TelegramDeps,
) -> Callable[[Application[Any, Any, Any, Any, Any, Any]], Coroutine[Any, Any, None]]:
    async def start(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        deps.outbox.start()  # what an earlier run left unsent goes out first
        await register_commands(app)
        await replay(app)  # and what it received but did not handle, before any new update

    return start


def _closer(
    deps: TelegramDeps,
) -> Callable[[Application[Any, Any, Any, Any, Any, Any]], Coroutine[Any, Any, None]]:
    async def close(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        if isinstance(app.update_queue, DurableUpdateQueue):
            app.update_queue.close()
        await deps.outbox.aclose()
        for resource in (deps.serving, deps.refs, deps.followups, deps.history):
            aclose = getattr(resource, "aclose", None)
            if aclose is not None:
                await aclose()
        close_sender = getattr(deps.outbox.sender, "close", None)
        if close_sender is not None:
            close_sender()

    return close


def run_polling(
    app: Application[Any, Any, Any, Any, Any, Any],
    *,
    drop_pending_updates: bool = False,
    poll_timeout_s: int = 10,
    bootstrap_retries: int = 3,
    **run_kwargs: Any,
) -> None:
    """Long polling (no public address needed). Blocks until SIGINT/SIGTERM."""
    app.run_polling(
        timeout=poll_timeout_s,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=drop_pending_updates,
        bootstrap_retries=bootstrap_retries,
        **run_kwargs,
    )


def run_webhook(
    app: Application[Any, Any, Any, Any, Any, Any],
    webhook: WebhookConfig,
    *,
    drop_pending_updates: bool = False,
    bootstrap_retries: int = 3,
    **run_kwargs: Any,
) -> None:
    """Listens on ``listen:port/path`` (TLS terminated in front) and registers ``url`` with
    Telegram; requests without the right ``X-Telegram-Bot-Api-Secret-Token`` get 403, and a
    body that is not a JSON object gets 400 (:func:`strict_webhook_bodies`)."""
    strict_webhook_bodies()
    app.run_webhook(
        listen=webhook.listen,
        port=webhook.port,
        url_path=webhook.path,
        webhook_url=webhook.url,
        secret_token=webhook.secret_token,
        allowed_updates=ALLOWED_UPDATES,
        drop_pending_updates=drop_pending_updates,
        bootstrap_retries=bootstrap_retries,
        **run_kwargs,
    )


def strict_webhook_bodies() -> None:
    """Found by fuzzing (tests/fuzz): python-telegram-bot's webhook handler decodes and parses
    the body outside its error handling, so a request with the right secret but a body that is
    not UTF-8 JSON (or is nested too deep to parse) answered 500. Its handler class is replaced,
    once, by a subclass that answers those 400 after the same content-type and secret checks
    (403 first: nothing is parsed for a request without the secret), then does what PTB does."""
    import json

    import tornado.web
    from telegram.ext._utils import webhookhandler  # tornado: only where a webhook runs

    if getattr(webhookhandler.TelegramHandler, "strict_bodies", False):
        return

    class StrictTelegramHandler(webhookhandler.TelegramHandler):
        __slots__ = ()
        strict_bodies = True

        async def post(self) -> None:
            self._validate_post()
            try:
                data = json.loads(self.request.body.decode())
            except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
                raise tornado.web.HTTPError(400, reason="the body is not UTF-8 JSON") from exc
            if not isinstance(data, dict):
                raise tornado.web.HTTPError(400, reason="an update is a JSON object")
            if type(data.get("update_id")) is not int:
                raise tornado.web.HTTPError(400, reason="an update's update_id is an integer")
            await super().post()

    webhookhandler.TelegramHandler = StrictTelegramHandler  # type: ignore[misc]


__all__ = [
    "ALLOWED_UPDATES",
    "ConfigError",
    "TelegramDeps",
    "TelegramHandlers",
    "TelegramOptions",
    "WebhookConfig",
    "add_handlers",
    "build_application",
    "check_webhook_secret",
    "keys_of",
    "make_deps",
    "register_commands",
    "run_polling",
    "run_webhook",
    "strict_webhook_bodies",
    "token_of",
]
