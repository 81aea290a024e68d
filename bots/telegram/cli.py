"""``thumbloop bot telegram``: run the Telegram adapter (long polling, or a webhook)."""

from __future__ import annotations

import logging

import click

from thumbloop.settings import Settings

REDACTED = "<telegram-token>"


class TokenRedactor(logging.Filter):
    """Replaces the bot token in every record a handler emits (httpx logs request URLs, and
    Bot API URLs contain the token)."""

    def __init__(self, token: str) -> None:
        super().__init__("thumbloop.token-redactor")
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, REDACTED), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, REDACTED)
        return True


def install_token_redaction(token: str, logger: logging.Logger | None = None) -> TokenRedactor:
    """Adds the redactor to every handler of ``logger`` (the root logger by default)."""
    target = logger or logging.getLogger()
    if not target.handlers:
        logging.basicConfig(level=logging.INFO)
    redactor = TokenRedactor(token)
    for handler in target.handlers:
        if not any(isinstance(f, TokenRedactor) and f.token == token for f in handler.filters):
            handler.addFilter(redactor)
    return redactor


@click.command(
    "telegram",
    epilog="Environment: THUMBLOOP_TELEGRAM_TOKEN (from @BotFather, required), "
    "THUMBLOOP_TELEGRAM_WEBHOOK_SECRET (webhook mode), THUMBLOOP_SERVING_URL, "
    "THUMBLOOP_BROKER_URL, THUMBLOOP_REDIS_URL, THUMBLOOP_ID_KEY and THUMBLOOP_SIGNING_KEY "
    "(`openssl rand -hex 32` each; they fall back to THUMBLOOP_HMAC_SECRET), "
    "THUMBLOOP_TELEGRAM_BASE_URL (a local Bot API server), THUMBLOOP_DEV=true (development "
    "only: allows the public development key and a short webhook secret).",
)
@click.option(
    "--webhook-url",
    default=None,
    metavar="URL",
    help="Public https:// URL Telegram posts updates to. Switches to webhook mode "
    "(needs THUMBLOOP_TELEGRAM_WEBHOOK_SECRET). Default: long polling.",
)
@click.option(
    "--listen",
    default="127.0.0.1",
    show_default=True,
    help="Webhook mode: address to listen on (0.0.0.0 in a container behind a TLS proxy).",
)
@click.option("--port", default=8443, show_default=True, type=int, help="Webhook mode: port.")
@click.option(
    "--url-path",
    default=None,
    help="Webhook mode: local path to listen on. Default: the path of --webhook-url.",
)
@click.option(
    "--drop-pending-updates", is_flag=True, help="Skip updates that arrived while the bot was down."
)
@click.option(
    "--reply-timeout",
    default=6.0,
    show_default=True,
    type=click.FloatRange(min=0.5, max=60),
    help="Seconds to wait for the serving worker before apologising to the user.",
)
@click.pass_context
def command(
    ctx: click.Context,
    webhook_url: str | None,
    listen: str,
    port: int,
    url_path: str | None,
    drop_pending_updates: bool,
    reply_timeout: float,
) -> None:
    """Run the Telegram bot: answers text messages, puts 👍/👎 under every reply and sends
    replies and votes to the learning queue.

    Long polling by default; with --webhook-url it listens for Telegram's webhook calls and
    refuses any without the secret token.
    """
    # python-telegram-bot loads when the bot runs: `thumbloop bot --help` imports this module
    from telegram.error import InvalidToken

    from bots.telegram.app import (
        ConfigError,
        TelegramOptions,
        WebhookConfig,
        build_application,
        keys_of,
        run_polling,
        run_webhook,
        token_of,
    )

    settings = ctx.find_object(Settings) or Settings()
    try:
        token = token_of(settings)
        keys_of(settings)  # before anything connects: weak keys and secrets stop here
        webhook = None
        if webhook_url:
            secret = settings.bots.telegram_webhook_secret
            if secret is None or not secret.get_secret_value():
                raise ConfigError(
                    "webhook mode needs THUMBLOOP_TELEGRAM_WEBHOOK_SECRET: "
                    "set it to `openssl rand -hex 32`"
                )
            webhook = WebhookConfig(
                url=webhook_url,
                secret_token=secret.get_secret_value(),
                listen=listen,
                port=port,
                url_path=url_path,
                dev=settings.bots.dev,
            )
    except ConfigError as exc:
        raise click.UsageError(str(exc), ctx) from exc
    install_token_redaction(token)
    app = build_application(settings, TelegramOptions(reply_timeout_s=reply_timeout))
    if webhook is None:
        click.echo(f"telegram bot: long polling; serving worker at {settings.serving.serving_url}")
    else:
        click.echo(
            f"telegram bot: webhook {webhook.url} -> http://{listen}:{port}/{webhook.path}; "
            f"serving worker at {settings.serving.serving_url}"
        )
    try:
        if webhook is None:
            run_polling(app, drop_pending_updates=drop_pending_updates)
        else:
            run_webhook(app, webhook, drop_pending_updates=drop_pending_updates)
    except InvalidToken as exc:
        raise click.ClickException(
            "Telegram refused THUMBLOOP_TELEGRAM_TOKEN: check the token @BotFather gave you"
        ) from exc
