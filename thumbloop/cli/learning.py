"""`thumbloop worker | retrain | promote | rollback | models`: the feedback loop's commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from thumbloop.cli.context import domain_option, settings_of


@click.command()
@click.option(
    "--queues", default="thumbloop,training", show_default=True, help="Queues to consume."
)
@click.option("--concurrency", "-c", default=1, show_default=True, type=int)
@click.option("--beat/--no-beat", default=True, show_default=True, help="Embed the beat scheduler.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.pass_context
def worker(ctx: click.Context, queues: str, concurrency: int, beat: bool, loglevel: str) -> None:
    """Run a Celery worker for the learning tasks (with beat: retrain checks on a timer).

    Run exactly one worker with --beat; more workers (e.g. GPU hosts with --queues training)
    without it.
    """
    from learning.worker.celery_app import create_celery
    from thumbloop.store.db import upgrade

    settings = settings_of(ctx)
    upgrade(settings.effective_database_url)
    app = create_celery(settings)
    argv = [
        "worker",
        f"--loglevel={loglevel}",
        f"--concurrency={concurrency}",
        f"--queues={queues}",
    ]
    if beat:
        schedule = settings.ensure_home() / "celerybeat-schedule"
        argv += ["--beat", f"--schedule={schedule}"]
    app.worker_main(argv)


@click.command()
@click.option("--force", is_flag=True, help="Retrain even when not due.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def retrain(ctx: click.Context, force: bool, as_json: bool) -> None:
    """Retrain from the recorded thumbs now (in this process), if due or --force."""
    from learning.retrain.run import retrain_if_due
    from thumbloop.store.db import make_engine, upgrade

    settings = settings_of(ctx)
    upgrade(settings.effective_database_url)
    result = retrain_if_due(
        settings, make_engine(settings.effective_database_url), force=force, progress=not as_json
    )
    click.echo(json.dumps(result, indent=2, default=str))


@click.command()
@click.argument("version")
@click.option("--who", default=None, help="Recorded as the promoter (default: login name).")
@click.option(
    "--force",
    is_flag=True,
    help="Promote a version whose gate failed (or that has no gate verdict): writes the override "
    "tag gate.override (who, when) on it, which serving obeys.",
)
@click.pass_context
def promote(ctx: click.Context, version: str, who: str | None, force: bool) -> None:
    """Make VERSION the champion (serving swaps it in at its next alias check).

    Serving only follows the alias to a version whose gate passed, or a seed; any other version
    is refused here unless --force.
    """
    from learning.registry.promotion import PromotionError
    from learning.registry.promotion import promote as do_promote

    try:
        move = do_promote(settings_of(ctx), version, who, force=force)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from exc
    forced = " (gate overridden)" if move.forced else ""
    click.echo(
        f"champion: {move.from_version} -> {move.to_version} (by {move.who} at {move.at}){forced}"
    )


@click.command()
@click.option("--who", default=None)
@click.pass_context
def rollback(ctx: click.Context, who: str | None) -> None:
    """Move champion back to the version it replaced most recently."""
    from learning.registry.promotion import PromotionError
    from learning.registry.promotion import rollback as do_rollback

    try:
        move = do_rollback(settings_of(ctx), who)
    except PromotionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"champion rolled back: {move.from_version} -> {move.to_version}")


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models(ctx: click.Context, as_json: bool) -> None:
    """List model versions with aliases, gate result, key metrics and thumbs-up rate."""
    from learning.registry.model_list import list_versions

    rows = list_versions(settings_of(ctx))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{settings_of(ctx).model_name} versions")
    for col in (
        "version",
        "aliases",
        "kind",
        "gate",
        "base",
        "golden intent",
        "golden sent.",
        "votes",
        "👍 rate",
        "created",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(
                _cell(r.get(k))
                for k in (
                    "version",
                    "aliases",
                    "kind",
                    "gate",
                    "base_version",
                    "golden_intent_accuracy",
                    "golden_sentiment_accuracy",
                    "votes",
                    "thumbs_up_rate",
                    "created",
                )
            )
        )
    Console().print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) or "-"
    return str(value)


COMMANDS = [worker, retrain, promote, rollback, models]


@click.command()
@domain_option
@click.option(
    "--seed-shots", default=10, show_default=True, type=int, help="Seed examples per intent."
)
@click.option("--rounds", default=5, show_default=True, type=int)
@click.option("--votes-per-round", default=1000, show_default=True, type=int)
@click.option("--noise", default=0.1, show_default=True, type=float, help="Chance a rater errs.")
@click.option(
    "--adversaries", default=0, show_default=True, type=int, help="Raters voting wrong on purpose."
)
@click.option(
    "--adversary-share", default=0.2, show_default=True, type=float, help="Their share of votes."
)
@click.option(
    "--replies",
    type=click.Choice(["template", "generative"]),
    default="template",
    show_default=True,
    help="generative: replies are written by the reply generator and rated on what they say "
    "(the right answer's key facts, briefly); the votes also train the generator (KTO). "
    "Generation is slow on a CPU: use a few hundred votes per round.",
)
@click.option(
    "--follow-up-rate",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Chance a rater answers the follow-up after a 👎 (0: thumbs only).",
)
@click.option(
    "--unhelpful-rate",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of 👎 that fall on right answers which did not help.",
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path(".thumbloop/simulation"),
    show_default=True,
)
@click.pass_context
def simulate(
    ctx: click.Context,
    domain_dir: Path,
    seed_shots: int,
    rounds: int,
    votes_per_round: int,
    noise: float,
    adversaries: int,
    adversary_share: float,
    replies: str,
    follow_up_rate: float,
    unhelpful_rate: float,
    seed: int,
    out: Path,
) -> None:
    """Drive the real loop with simulated raters and write a learning curve (JSON + PNG)."""
    from learning.simulate.run import SimConfig
    from learning.simulate.run import simulate as run

    cfg = SimConfig(
        seed_shots=seed_shots,
        rounds=rounds,
        votes_per_round=votes_per_round,
        noise=noise,
        adversaries=adversaries,
        adversary_share=adversary_share,
        replies=replies,
        seed=seed,
        follow_up_rate=follow_up_rate,
        unhelpful_rate=unhelpful_rate,
    )
    report = run(domain_dir, out.resolve(), cfg, settings_of(ctx))
    for r in report["rounds"]:
        click.echo(
            f"round {r['round']:>2}  votes {r['votes']:>6}  accuracy {r['accuracy']:.4f}  "
            f"gate {r['gate']:<7} champion v{r['champion']}  ({r['seconds']} s)" + _reply_summary(r)
        )
    click.echo(f"reference (supervised): {report['supervised_reference']['accuracy']:.4f}")
    click.echo(f"final model: {report['final_model']}  -> {out / 'learning_curve.json'}")


def _reply_summary(r: dict[str, Any]) -> str:
    parts = []
    if "replies" in r:
        got = r["replies"]
        parts.append(f"👍 {got['like_rate']:.1%} of {got['generated']} generated")
    if "golden_like_rate" in r:
        parts.append(f"golden like {r['golden_like_rate']:.1%}")
    if r.get("generator_gate"):
        parts.append(f"generator {r['generator_gate']}")
    return ("  " + ", ".join(parts)) if parts else ""


COMMANDS.append(simulate)
