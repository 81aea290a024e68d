"""The `thumbloop` command: the root group, and every command module's commands under it.

Each module of this package holds one group of commands and imports its heavy libraries
(torch, mlflow, the chat platforms' SDKs) inside the commands, so `thumbloop --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import ClassVar

import click

from thumbloop.cli import bot, db, learning, model, ops, review, serve, stack
from thumbloop.cli.context import LazyGroup
from thumbloop.settings import Settings


class _RootGroup(LazyGroup):
    lazy: ClassVar[dict[str, str]] = {"chat": "bots.terminal.cli:chat"}


@click.group(cls=_RootGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Thumbloop: a chat bot that learns from its users' thumbs.

    Settings come from THUMBLOOP_* environment variables (docs/configuration.md).
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


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)


for _module in (db, model, serve, learning, ops, stack, bot, review):
    for _command in _module.COMMANDS:
        cli.add_command(_command)
