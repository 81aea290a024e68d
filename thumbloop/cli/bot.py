"""`thumbloop bot telegram|slack`: the chat platform adapters, imported when one is run."""

from __future__ import annotations

from typing import ClassVar

import click

from thumbloop.cli.context import LazyGroup


class _BotGroup(LazyGroup):
    lazy: ClassVar[dict[str, str]] = {
        "telegram": "bots.telegram.cli:command",
        "slack": "bots.slack.cli:command",
    }


@click.group(cls=_BotGroup)
def bot() -> None:
    """Run a chat platform adapter (Telegram or Slack)."""


COMMANDS: list[click.Command] = [bot]
