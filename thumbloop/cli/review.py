"""`thumbloop review`: the review inbox (a web app), and its reviewers (`add-user`,
`remove-user`, `users`)."""

from __future__ import annotations

import click

from thumbloop.cli.context import settings_of

MIN_PASSWORD = 10


@click.group(invoke_without_command=True)
@click.option("--host", default=None, help="Address to bind [default: THUMBLOOP_REVIEW_HOST].")
@click.option("--port", default=None, type=int, help="Port [default: THUMBLOOP_REVIEW_PORT].")
@click.pass_context
def review(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the review inbox: downvoted and unsure messages, grouped, labelled by reviewers.

    Reviewers log in with a password (`thumbloop review add-user NAME`); their labels are gold
    examples for the next retrain (docs/review.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from learning.review.app import create_app
    from learning.review.users import UserStore, users_file
    from thumbloop.store.db import upgrade

    settings = settings_of(ctx)
    extra = settings.review.review_users
    users = UserStore(users_file(settings), extra.get_secret_value() if extra else None)
    if not users.names():
        raise click.ClickException(
            f"no reviewers in {users.path} or THUMBLOOP_REVIEW_USERS: "
            "add one with `thumbloop review add-user NAME`"
        )
    upgrade(settings.effective_database_url)
    app = create_app(settings, users=users)
    host = host or settings.review.review_host
    port = port or settings.review.review_port
    click.echo(f"review inbox on http://{host}:{port} ({len(users.names())} reviewers)")
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)


@review.command("add-user")
@click.argument("name")
@click.pass_context
def add_user(ctx: click.Context, name: str) -> None:
    """Add reviewer NAME, or set a new password (prompted twice, never an argument)."""
    from learning.review.users import NAME, set_user, users_file

    if not NAME.match(name):
        raise click.BadParameter("1-64 letters, digits or _ . @ -", param_hint="NAME")
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if len(password) < MIN_PASSWORD:
        raise click.ClickException(f"a password needs at least {MIN_PASSWORD} characters")
    path = users_file(settings_of(ctx))
    new = set_user(path, name, password)
    click.echo(f"{'added' if new else 'changed the password of'} {name} in {path}")


@review.command("remove-user")
@click.argument("name")
@click.pass_context
def remove_user(ctx: click.Context, name: str) -> None:
    """Remove reviewer NAME (their open sessions end at their next request)."""
    from learning.review.users import remove_user as remove
    from learning.review.users import users_file

    path = users_file(settings_of(ctx))
    if not remove(path, name):
        raise click.ClickException(f"no reviewer {name} in {path}")
    click.echo(f"removed {name} from {path}")


@review.command("users")
@click.pass_context
def list_users(ctx: click.Context) -> None:
    """List the reviewers (names only)."""
    from learning.review.users import UserStore, users_file

    settings = settings_of(ctx)
    extra = settings.review.review_users
    store = UserStore(users_file(settings), extra.get_secret_value() if extra else None)
    for name in sorted(store.names()):
        click.echo(name)


COMMANDS: list[click.Command] = [review]
