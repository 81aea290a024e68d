"""`thumbloop up`: the whole loop, supervised (`thumbloop chat` is in bots/terminal/cli.py)."""

from __future__ import annotations

from pathlib import Path

import click

from thumbloop.cli.context import settings_of
from thumbloop.identity import ensure_home_keys
from thumbloop.settings import Settings


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

    settings = settings_of(ctx)
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
    _prepare(ctx, settings, domain_dir or settings.learning.domain_dir)
    # the bots refuse the built-in dev key: a local stack without keys gets its own, per home
    keys_file = ensure_home_keys(settings)
    click.echo(stack.banner(settings, opts, procs))
    if keys_file is not None:
        click.echo(f"  keys         {keys_file} (random, this home only; set THUMBLOOP_ID_KEY …)")
    stack.announce_when_ready(stack.serving_url(opts))
    code = stack.run(procs, stack.child_env(settings, opts))
    ctx.exit(code)


def _prepare(ctx: click.Context, settings: Settings, domain_dir: Path) -> None:
    """Migrate the database and make sure there is a champion to serve."""
    from serving.admission import alias_target
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
    from thumbloop.cli.model import train

    ctx.invoke(train, domain_dir=domain_dir)


COMMANDS = [up]
