"""`thumbloop train` and `thumbloop eval`: make a model from a domain, and score one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from thumbloop.cli.context import domain_option, settings_of


@click.command()
@domain_option
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
    settings = settings_of(ctx)
    if if_no_champion:
        from serving.admission import alias_target

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
        "device": settings.compute.device,
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


@click.command("eval")
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

    settings = settings_of(ctx)
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
        bundle = load_bundle(resolved.bundle_dir, resolve_device(settings.compute.device))
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


COMMANDS: list[click.Command] = [train, eval_cmd]
