"""``thumbloop chat``: the terminal platform's command (a script of steps, or a prompt).

`thumbloop --help` imports this module to list the command, so only click and the settings are
imported up here; the session, the queue and the serving client load when a chat starts.
"""

from __future__ import annotations

import asyncio
import getpass
from typing import IO

import click

from thumbloop.identity import KeyConfigError, resolve_keys
from thumbloop.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


@click.command()
@click.option("--api", default=None, help="Serving worker URL [default: THUMBLOOP_SERVING_URL].")
@click.option(
    "--script",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Run a chat script ('-' for stdin) instead of prompting: "
    "'> text' sends a message, '+' / '-' rates the last reply, '? 1' (or '? s', '? h') "
    "says what went wrong after a '-'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per step.")
@click.option("--user", default=None, help="Your rater name (hashed) [default: login name].")
@click.pass_context
def chat(
    ctx: click.Context, api: str | None, script: IO[str] | None, as_json: bool, user: str | None
) -> None:
    """Chat with the running stack in the terminal and rate its replies (👍 '+', 👎 '-').

    Replies and votes go through the same queue as Telegram's and Slack's.
    """
    # the session, its contracts and Celery's producer load when a chat starts, not for --help
    from bots.terminal.app import ChatSession
    from bots.terminal.convert import ScriptError, parse_script
    from thumbloop.queue import TaskQueue

    settings = _settings(ctx)
    steps = None
    if script is not None:
        try:
            steps = parse_script(script)
        except ScriptError as exc:
            raise click.ClickException(f"{script.name}: {exc}") from exc
    try:
        id_key = resolve_keys(settings).id_key  # the bots' id key: your votes count as theirs do
    except KeyConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    queue = TaskQueue(settings.effective_broker_url)
    session = ChatSession(
        queue=queue,
        id_key=id_key,
        user=user or _login(),
        history_turns=settings.bots.history_turns,
    )
    url = api or settings.serving.serving_url
    try:
        if steps is not None:
            from bots.terminal.runner import run_script  # httpx and kombu: as above

            failures = asyncio.run(run_script(session, url, steps, as_json))
            if failures:
                raise click.ClickException(f"{failures} step(s) failed (see above)")
        else:
            from bots.terminal.runner import run_interactive  # as above

            asyncio.run(run_interactive(session, url))
    finally:
        queue.close()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli-user"
