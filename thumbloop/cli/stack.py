"""`thumbloop up` (the whole loop, supervised) and `thumbloop chat` (a terminal platform)."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import IO

import click

from thumbloop.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Serving worker address.")
@click.option("--port", default=8000, show_default=True, type=int, help="Serving worker port.")
@click.option("--mlflow-port", default=5000, show_default=True, type=int, help="MLflow UI port.")
@click.option("--no-mlflow-ui", is_flag=True, help="Do not run the MLflow UI/REST server.")
@click.option(
    "--domain",
    "domain_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Domain to seed-train when no champion exists [default: THUMBLOOP_DOMAIN_DIR].",
)
@click.option("--worker-concurrency", default=2, show_default=True, type=int)
@click.option("--dry-run", is_flag=True, help="Print what would run, then exit.")
@click.pass_context
def up(
    ctx: click.Context,
    host: str,
    port: int,
    mlflow_port: int,
    no_mlflow_ui: bool,
    domain_dir: Path | None,
    worker_concurrency: int,
    dry_run: bool,
) -> None:
    """Run the whole loop: serving worker, Celery worker + beat, MLflow UI and the bots.

    Trains and registers the seed model first when the model has no champion. Bots start when
    their credentials are set. Ctrl-C stops everything.
    """
    from thumbloop.cli import supervisor as stack

    settings = _settings(ctx)
    opts = stack.StackOptions(
        host=host,
        port=port,
        mlflow_port=mlflow_port,
        mlflow_ui=not no_mlflow_ui,
        worker_concurrency=worker_concurrency,
    )
    procs = stack.plan(settings, opts)
    if dry_run:
        click.echo(stack.banner(settings, opts, procs))
        for proc in procs:
            click.echo(f"{proc.name}: {proc.command}")
        return
    busy = stack.busy_ports(settings, opts)
    if busy:
        raise click.ClickException(
            f"port(s) {', '.join(map(str, busy))} already in use: is another stack running? "
            "Choose others with --port / --mlflow-port."
        )
    _prepare(ctx, settings, domain_dir or settings.domain_dir)
    click.echo(stack.banner(settings, opts, procs))
    stack.announce_when_ready(stack.serving_url(opts))
    code = stack.run(procs, stack.child_env(settings, opts))
    ctx.exit(code)


def _prepare(ctx: click.Context, settings: Settings, domain_dir: Path) -> None:
    """Migrate the database and make sure there is a champion to serve."""
    from serving.model_source import alias_target
    from thumbloop.store.db import upgrade

    settings.ensure_home()
    upgrade(settings.effective_database_url)
    if alias_target(settings.effective_tracking_uri, settings.model_name, settings.model_alias):
        return
    if not domain_dir.is_dir():
        raise click.ClickException(
            f"no {settings.model_uri} to serve and no domain folder at {domain_dir} to train one "
            "(set THUMBLOOP_DOMAIN_DIR or --domain)"
        )
    click.echo(f"no {settings.model_uri} yet: training the seed model on {domain_dir} first")
    from thumbloop.cli.main import train

    ctx.invoke(train, domain_dir=domain_dir)


@click.command()
@click.option("--api", default=None, help="Serving worker URL [default: THUMBLOOP_SERVING_URL].")
@click.option(
    "--script",
    type=click.File("r", encoding="utf-8"),
    default=None,
    help="Run a chat script ('-' for stdin) instead of prompting: "
    "'> text' sends a message, '+' / '-' rates the last reply.",
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
    from bots.terminal.session import ChatSession, ScriptError, parse_script
    from thumbloop.queue import TaskQueue

    settings = _settings(ctx)
    steps = None
    if script is not None:
        try:
            steps = parse_script(script)
        except ScriptError as exc:
            raise click.ClickException(f"{script.name}: {exc}") from exc
    queue = TaskQueue(settings.effective_broker_url)
    session = ChatSession(
        queue=queue,
        secret=settings.hmac_secret.get_secret_value(),
        user=user or _login(),
        history_turns=settings.history_turns,
    )
    url = api or settings.serving_url
    try:
        if steps is not None:
            from bots.terminal.runner import run_script

            failures = asyncio.run(run_script(session, url, steps, as_json))
            if failures:
                raise click.ClickException(f"{failures} step(s) failed (see above)")
        else:
            from bots.terminal.runner import run_interactive

            asyncio.run(run_interactive(session, url))
    finally:
        queue.close()


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli-user"


COMMANDS = [up, chat]
