"""`thumbloop db`: the database schema (Alembic migrations)."""

from __future__ import annotations

import click

from thumbloop.cli.context import settings_of


@click.group()
def db() -> None:
    """Database schema (Alembic migrations)."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@click.pass_context
def db_upgrade(ctx: click.Context, revision: str) -> None:
    """Apply migrations up to REVISION."""
    from thumbloop.store.db import upgrade

    settings = settings_of(ctx)
    upgrade(settings.effective_database_url, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
@click.pass_context
def db_downgrade(ctx: click.Context, revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes every table)."""
    from thumbloop.store.db import downgrade

    downgrade(settings_of(ctx).effective_database_url, revision)
    click.echo(f"database at {revision}")


COMMANDS: list[click.Command] = [db]
