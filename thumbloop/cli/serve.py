"""`thumbloop serve`: the serving worker."""

from __future__ import annotations

import click

from thumbloop.cli.context import settings_of


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--model", "model_uri", default=None, help="models:/NAME@ALIAS (default) or a path.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, model_uri: str | None) -> None:
    """Run the serving worker (HTTP API, dynamic batching, alias hot swap)."""
    import uvicorn

    from serving.app import create_app

    settings = settings_of(ctx)
    app = create_app(settings, model_uri)
    click.echo(f"serving {model_uri or settings.model_uri} on http://{host}:{port} (docs: /docs)")
    # no proxy-header rewriting: nothing here reads the client address, and it costs the event
    # loop (which shares the cores with the model) a middleware call per request
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=False, proxy_headers=False)


COMMANDS: list[click.Command] = [serve]
