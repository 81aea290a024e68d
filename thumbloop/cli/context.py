"""What every command module shares: the settings of the invocation, and lazy subcommands."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import click

from thumbloop.settings import Settings

# `train` and `simulate` read a domain folder; one option so both say the same
domain_option = click.option(
    "--domain",
    "domain_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=Path("data/banking"),
    show_default=True,
    help="Domain folder (see data/README.md).",
)


def settings_of(ctx: click.Context) -> Settings:
    """The settings the root command read from the environment."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


class LazyGroup(click.Group):
    """Subcommands imported on use, so `thumbloop --help` stays fast."""

    lazy: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib  # a lazy command's module is imported only when it runs

            module, _, attr = self.lazy[name].partition(":")
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, name)
