"""``thumbloop bot slack``: run the Slack adapter in Socket Mode or as an HTTP Events API app."""

from __future__ import annotations

import asyncio

import click

from thumbloop.identity import KeyConfigError, check_keys
from thumbloop.settings import Settings

HELP = """Run the Slack bot.

\b
Socket Mode (the default when THUMBLOOP_SLACK_APP_TOKEN is set): an outbound WebSocket to
Slack, no public URL needed.
HTTP mode (--http, or no app token): Slack POSTs events, actions and the /thumbloop command
to http://HOST:PORT/slack/events; every request's signature is checked and bodies over 1 MiB
are refused. It listens on 127.0.0.1: put a TLS reverse proxy or ingress in front (--host
0.0.0.0 in a container that the proxy reaches over its network).

\b
Environment:
  THUMBLOOP_SLACK_BOT_TOKEN       bot token, xoxb-... (required)
  THUMBLOOP_SLACK_APP_TOKEN       app-level token, xapp-... (Socket Mode; connections:write)
  THUMBLOOP_SLACK_SIGNING_SECRET  signing secret (required in HTTP mode)
  THUMBLOOP_SERVING_URL           the serving worker (default http://127.0.0.1:8000)
  THUMBLOOP_BROKER_URL            where votes and interactions are queued
  THUMBLOOP_REDIS_URL             shared state (history, repeat deliveries); optional
  THUMBLOOP_SLACK_API_URL         Web API base (default https://slack.com/api/)
  THUMBLOOP_ID_KEY                hashes Slack user and channel ids (openssl rand -hex 32)
  THUMBLOOP_SIGNING_KEY           signs the vote buttons (openssl rand -hex 32)
  THUMBLOOP_DEV                   true: allow the public development key (never in production)
"""


def _settings(ctx: click.Context) -> Settings:
    found = ctx.find_object(Settings)
    return found if found is not None else Settings()


def check_tokens(settings: Settings, *, http: bool) -> None:
    """Clear errors before anything connects; never prints a token or a key."""
    bot = settings.bots.slack_bot_token.get_secret_value() if settings.bots.slack_bot_token else ""
    if not bot:
        raise click.UsageError(
            "THUMBLOOP_SLACK_BOT_TOKEN is not set: the bot token (xoxb-...) from the app's "
            "OAuth & Permissions page."
        )
    if not bot.startswith("xoxb-"):
        raise click.UsageError("THUMBLOOP_SLACK_BOT_TOKEN must be a bot token (starts with xoxb-).")
    if http:
        secret = settings.bots.slack_signing_secret
        if secret is None or not secret.get_secret_value():
            raise click.UsageError(
                "HTTP mode needs THUMBLOOP_SLACK_SIGNING_SECRET (Basic Information > App "
                "Credentials) to verify Slack's requests; or set THUMBLOOP_SLACK_APP_TOKEN for "
                "Socket Mode."
            )
    else:
        app = (
            settings.bots.slack_app_token.get_secret_value()
            if settings.bots.slack_app_token
            else ""
        )
        if not app.startswith("xapp-"):
            raise click.UsageError(
                "THUMBLOOP_SLACK_APP_TOKEN must be an app-level token (starts with xapp-) "
                "with the connections:write scope."
            )
    try:
        check_keys(settings)
    except KeyConfigError as exc:
        raise click.UsageError(str(exc)) from exc


@click.command("slack", help=HELP)
@click.option(
    "--http",
    "force_http",
    is_flag=True,
    help="Serve the HTTP Events API even when an app token is set.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="HTTP mode: bind address. Slack reaches the bot through a TLS reverse proxy or ingress; "
    "0.0.0.0 only where that proxy is on another host or container.",
)
@click.option("--port", default=3000, show_default=True, type=int, help="HTTP mode: port.")
@click.pass_context
def command(ctx: click.Context, force_http: bool, host: str, port: int) -> None:
    settings = _settings(ctx)
    http = force_http or settings.bots.slack_app_token is None
    check_tokens(settings, http=http)

    # slack-bolt loads when the bot runs: `thumbloop bot --help` imports this module
    from bots.slack.app import build_http_app, build_slack_bot, run_socket_mode

    bot = build_slack_bot(settings, http=http)
    if http:
        import uvicorn  # HTTP mode only: Socket Mode serves nothing

        click.echo(f"Slack bot (HTTP): events at http://{host}:{port}/slack/events")
        uvicorn.run(build_http_app(bot), host=host, port=port, log_level="info", access_log=False)
        return
    assert settings.bots.slack_app_token is not None
    click.echo("Slack bot (Socket Mode): connecting...")
    try:
        asyncio.run(run_socket_mode(bot, settings.bots.slack_app_token.get_secret_value()))
    except KeyboardInterrupt:
        click.echo("stopped")
