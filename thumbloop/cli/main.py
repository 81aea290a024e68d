"""The `thumbloop` command. Heavy imports (torch, mlflow) happen inside the commands."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, ClassVar

import click

from thumbloop.settings import Settings


def _settings(ctx: click.Context) -> Settings:
    settings = ctx.obj
    assert isinstance(settings, Settings)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Thumbloop: a chat bot that learns from its users' thumbs.

    Settings come from THUMBLOOP_* environment variables (see README).
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("httpx", "alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # transformers' per-load progress bars and load reports are noise in a CLI
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    ctx.obj = Settings()


@cli.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from thumbloop.store.db import upgrade

    settings = _settings(ctx)
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes every table)."""
    from thumbloop.store.db import downgrade

    downgrade(_settings(ctx).effective_database_url, revision)
    click.echo(f"database at {revision}")


@cli.command()
@click.option(
    "--domain",
    "domain_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("data/banking"),
    show_default=True,
    help="Domain folder (see data/README.md).",
)
@click.option("--epochs", type=int, default=None, help="Fine-tuning epochs.")
@click.option("--layers-to-tune", type=int, default=None, help="Top encoder layers to tune (0-6).")
@click.option("--max-sentiment", type=int, default=None, help="Cap sentiment training rows.")
@click.option("--seed", type=int, default=None)
@click.option(
    "--time-budget",
    type=click.FloatRange(min=0),
    default=None,
    help="Seconds the training may take (default 540; 0: no limit). Fine-tuning plans fewer "
    "steps when its measured step rate would run past it.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Bundle folder.")
@click.option("--no-register", is_flag=True, help="Only write the bundle; no MLflow run.")
@click.option(
    "--if-no-champion", is_flag=True, help="Do nothing when the model already has a champion."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def train(
    ctx: click.Context,
    domain_dir: Path,
    epochs: int | None,
    layers_to_tune: int | None,
    max_sentiment: int | None,
    seed: int | None,
    time_budget: float | None,
    out: Path | None,
    no_register: bool,
    if_no_champion: bool,
    as_json: bool,
) -> None:
    """Train the encoder + intent and sentiment heads on a domain and register the model."""
    settings = _settings(ctx)
    if if_no_champion:
        from serving.model_source import alias_target

        try:
            version = alias_target(settings.effective_tracking_uri, settings.model_name, "champion")
        except Exception as exc:  # e.g. 401 from a server with basic auth: do not train blindly
            raise click.ClickException(
                f"cannot ask {settings.effective_tracking_uri} for {settings.model_name}@champion "
                f"({exc}); check MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
            ) from exc
        if version is not None:
            click.echo(f"{settings.model_name}@champion is version {version}: nothing to train")
            return
    from learning.seed.config import TrainConfig
    from learning.seed.run import train_and_register
    from thumbloop.domain import DomainError

    overrides: dict[str, Any] = {
        "epochs": epochs,
        "layers_to_tune": layers_to_tune,
        "max_sentiment_examples": max_sentiment,
        "seed": seed,
        "device": settings.device,
    }
    cfg = TrainConfig(**{k: v for k, v in overrides.items() if v is not None})
    if time_budget is not None:
        cfg = cfg.model_copy(update={"time_budget_s": time_budget or None})
    try:
        result = train_and_register(
            settings, domain_dir, cfg, out_dir=out, register=not no_register
        )
    except DomainError as exc:
        raise click.ClickException(str(exc)) from exc
    summary = {
        "bundle": str(result.bundle_dir),
        "metrics": result.metrics,
        "seconds": result.seconds,
        "version": result.registered.version if result.registered else None,
        "aliases": result.registered.aliases if result.registered else [],
        "run_id": result.registered.run_id if result.registered else None,
    }
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    click.echo(f"bundle: {result.bundle_dir}")
    for key, value in sorted(result.metrics.items()):
        click.echo(f"  {key:<42} {value:.4f}")
    click.echo(f"time: {result.seconds.get('total', 0):.0f} s  ({result.seconds})")
    if result.registered:
        aliases = ", ".join(result.registered.aliases) or "no alias"
        click.echo(
            f"registered {settings.model_name} version {result.registered.version} ({aliases}); "
            f"run {result.registered.run_id}"
        )


@cli.command("eval")
@click.option(
    "--model", "model_uri", default=None, help="models:/NAME@ALIAS, models:/NAME/N or a path."
)
@click.option(
    "--data", "data_path", required=True, type=click.Path(path_type=Path), help="JSONL file."
)
@click.option("--task", type=click.Choice(["intent", "sentiment"]), required=True)
@click.option("--json", "as_json", is_flag=True, help="Print metrics as JSON.")
@click.pass_context
def eval_cmd(
    ctx: click.Context, model_uri: str | None, data_path: Path, task: str, as_json: bool
) -> None:
    """Score a model on a JSONL file of {"text", "label"} lines."""
    from thumbloop.evaldata import EvalDataError, read_eval_file

    settings = _settings(ctx)
    try:  # check the file before paying for a model load
        read_eval_file(data_path, task)  # type: ignore[arg-type]
    except EvalDataError as exc:
        raise click.ClickException(str(exc)) from exc
    from learning.seed.evaluate import evaluate_file
    from serving.model_source import resolve
    from thumbloop.model.bundle import BundleError, load_bundle
    from thumbloop.model.device import resolve_device

    uri = model_uri or settings.model_uri
    try:
        resolved = resolve(uri, settings.effective_tracking_uri, settings.home / "models")
        bundle = load_bundle(resolved.bundle_dir, resolve_device(settings.device))
        scores = evaluate_file(bundle, data_path, task, progress=not as_json)  # type: ignore[arg-type]
    except (EvalDataError, BundleError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    result = {"model": resolved.version, "data": str(data_path), "task": task, **scores}
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    click.echo(f"model {resolved.version} on {data_path} ({task}, n={int(scores['n'])})")
    for key, value in scores.items():
        if key != "n":
            click.echo(f"  {key:<20} {value * 100:6.2f} %")


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--model", "model_uri", default=None, help="models:/NAME@ALIAS (default) or a path.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, model_uri: str | None) -> None:
    """Run the serving worker (HTTP API, dynamic batching, alias hot swap)."""
    import uvicorn

    from serving.app import create_app

    settings = _settings(ctx)
    app = create_app(settings, model_uri)
    click.echo(f"serving {model_uri or settings.model_uri} on http://{host}:{port} (docs: /docs)")
    # no proxy-header rewriting: nothing here reads the client address, and it costs the event
    # loop (which shares the cores with the model) a middleware call per request
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, proxy_headers=False)


class _LazyGroup(click.Group):
    """Subcommands imported on use, so `thumbloop --help` stays fast."""

    lazy: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, _, attr = self.lazy[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)


class _BotGroup(_LazyGroup):
    lazy: ClassVar[dict[str, str]] = {
        "telegram": "bots.telegram.cli:command",
        "slack": "bots.slack.cli:command",
    }


@cli.group(cls=_BotGroup)
def bot() -> None:
    """Run a chat platform adapter (Telegram or Slack)."""


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


def _add_learning_commands() -> None:
    from thumbloop.cli import learning as cli_learning
    from thumbloop.cli import ops as cli_ops
    from thumbloop.cli import stack as cli_stack

    for command in cli_learning.COMMANDS + cli_stack.COMMANDS + cli_ops.COMMANDS:
        cli.add_command(command)


_add_learning_commands()
